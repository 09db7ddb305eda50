/*
 * Azure Integrated HSM PCIe function (1414:C003): shared declarations
 *
 * The device is split like QEMU's own multi-file devices (hw/nvme):
 *   azihsm.h        the state, constants and prototypes the files share
 *   azihsm.c        the PCI function: registers, BARs, MSI-X, queues,
 *                   completions, HSM and AES commands, DMA/PRP, QOM, lifecycle
 *   azihsm-admin.c  the admin queue's commands
 *   azihsm-link.c   the chardev link to the backend: framing, HELLO,
 *                   output buffering, input parser, connection events
 *
 * Specifications: docs/device.md (the function as emulated),
 * docs/link-protocol.md (backend link).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_AZIHSM_H
#define HW_AZIHSM_H

#include "qemu/queue.h"
#include "qemu/timer.h"
#include "qemu/units.h"
#include "hw/pci/pci_device.h"
#include "chardev/char-fe.h"
#include "qom/object.h"
#include "qemu/notify.h"
#include "system/runstate.h"

#define TYPE_AZIHSM "azihsm"
OBJECT_DECLARE_SIMPLE_TYPE(AzihsmState, AZIHSM)

/* PCI identity and resources (docs/device.md, PCI function) */
#define AZIHSM_VENDOR_ID        0x1414
#define AZIHSM_DEVICE_ID        0xC003
#define AZIHSM_CLASS            0x1080      /* encryption controller, other */
#define AZIHSM_BAR_SIZE         (4 * KiB)
#define AZIHSM_MSIX_VECTORS     32
#define AZIHSM_MSIX_TABLE_OFF   0x000
#define AZIHSM_MSIX_PBA_OFF     0x800
#define AZIHSM_PAGE_SIZE        4096
#define AZIHSM_DEFAULT_SERIAL   "AZIHSM-0000000000000001"

#define AZIHSM_VERSION          0x00010400
#define AZIHSM_MQES             4095        /* 0-based: 4096 entries */
#define AZIHSM_MAX_QSIZE        (AZIHSM_MQES + 1)

/* Status values of the 11-bit CQE status field (docs/link-protocol.md) */
enum {
    ST_SUCCESS              = 0x000,
    ST_INVALID_OPCODE       = 0x001,
    ST_INVALID_FIELD        = 0x002,
    ST_DATA_TRANSFER        = 0x004,
    ST_SGL_COUNT_INVALID    = 0x00E,    /* AES SGLs (docs/device.md, AES path) */
    ST_SGL_LENGTH_INVALID   = 0x00F,
    ST_SGL_TYPE_INVALID     = 0x011,
    ST_SGL_SUBTYPE_INVALID  = 0x016,
    ST_INTERNAL             = 0x006,
    ST_ABORTED_SQ_DELETED   = 0x008,
    ST_CQ_INVALID           = 0x100,
    ST_INVALID_QID          = 0x101,
    ST_INVALID_QSIZE        = 0x102,
    ST_INVALID_VECTOR       = 0x108,
    ST_INVALID_DELETION     = 0x10C,
    ST_BACKEND_UNAVAILABLE  = 0x701,
    ST_BACKEND_TIMEOUT      = 0x702,
    ST_BACKEND_PROTOCOL     = 0x703,
    ST_NOT_SUPPORTED        = 0x704,
};

#define AZIHSM_MAX_RES_CNT      64

/* Link protocol (docs/link-protocol.md) */
#define LINK_MAGIC              "AZHL"
#define LINK_VERSION            1
#define LINK_MINOR              2       /* 1.1: AES messages; 1.2: LM context */
#define LINK_AES_MINOR          1       /* a backend below this has no AES */
#define LINK_LM_MINOR           2       /* a backend below this has no context */
#define LINK_LM_VERSION         1       /* byte 0 of the LM context bodies */
#define AZIHSM_LM_CTX_MAX       2048    /* largest sealed migration context */
#define LINK_HDR_SIZE           16
#define LINK_MAX_BODY           16384
#define LINK_MAX_AES_BODY       (1 * MiB + 256)
#define LINK_READ_OFFER         (4 * KiB)    /* bytes offered to the chardev per read */
#define LINK_AES_VERSION        1       /* byte 0 of the AES bodies */
#define LINK_AES_REQ_FIXED      68
#define LINK_AES_RSP_FIXED      44
#define LINK_MAX_INFLIGHT       64
#define LINK_SERIAL_LEN         32
/* a backend this far behind is dead: more than every slot's largest AES frame */
#define LINK_OUTBUF_LIMIT       (LINK_MAX_INFLIGHT * 2 * MiB)
#define LINK_REQ_FIXED          20
#define LINK_RSP_FIXED          12
enum {
    MSG_HELLO       = 0x01,
    MSG_REQUEST     = 0x02,
    MSG_RESET       = 0x03,
    MSG_CANCEL      = 0x04,
    MSG_AES_REQUEST = 0x06,
    MSG_LM_CTX_GET  = 0x07,
    MSG_LM_CTX_SET  = 0x08,
    MSG_HELLO_ACK   = 0x81,
    MSG_RESPONSE    = 0x82,
    MSG_RESET_ACK   = 0x83,
    MSG_AES_RESPONSE = 0x86,
    MSG_LM_CTX      = 0x87,
    MSG_LM_CTX_SET_ACK = 0x88,
};
enum {
    RESET_CONTROLLER    = 1,
    RESET_NSSR          = 2,
    RESET_FUNCTION      = 3,
};
#define HELLO_ACCEPTED          0
#define HELLO_BUSY              2
#define HELLO_ROT_FAILURE       3

typedef enum AzihsmLinkState {
    LINK_DOWN,          /* no connection */
    LINK_HANDSHAKE,     /* HELLO sent, waiting for HELLO_ACK */
    LINK_UP,            /* HELLO_ACK result 0: commands are forwarded */
    LINK_REFUSED,       /* HELLO_ACK with a nonzero result */
} AzihsmLinkState;

/*
 * Queue kinds.  The entry format of a queue follows from its qid range
 * (docs/device.md, HSM queues and AES queues); the CQE field offsets
 * differ between formats.
 */
typedef enum AzihsmQueueKind {
    QK_ADMIN,
    QK_HSM,
    QK_AES,
} AzihsmQueueKind;

typedef struct AzihsmQueueFormat {
    const char *name;
    uint8_t sqe_size;
    uint8_t cqe_size;
    uint8_t cqe_sqhd;       /* offsets of the fields the device owns */
    uint8_t cqe_sqid;
    uint8_t cqe_cid;
    uint8_t cqe_status;     /* u16: bit 0 phase, status from bit 1 */
} AzihsmQueueFormat;

extern const AzihsmQueueFormat azihsm_formats[];

#define AZIHSM_MAX_SQE          128
#define AZIHSM_MAX_CQE          64
#define AZIHSM_HSM_QID_FIRST    1
#define AZIHSM_AES_QID_FIRST    256
#define AZIHSM_MAX_HSM_QUEUES   AZIHSM_MAX_RES_CNT
#define AZIHSM_MAX_AES_QUEUES   (2 * AZIHSM_MAX_RES_CNT)
/* Queue slots: 0 admin, 1..64 HSM, 65..192 AES */
#define AZIHSM_NUM_SLOTS        (1 + AZIHSM_MAX_HSM_QUEUES + AZIHSM_MAX_AES_QUEUES)
#define AZIHSM_NUM_DOORBELLS    (AZIHSM_BAR_SIZE / 8)

/* A completion waiting for room in its CQ. */
typedef struct AzihsmCompletion {
    QSIMPLEQ_ENTRY(AzihsmCompletion) next;
    uint16_t sqid;
    uint32_t sq_gen;        /* SQ incarnation the command came from */
    uint16_t sqhd;          /* SQ head when completed, if that SQ is gone */
    uint16_t status;
    uint8_t cqe[AZIHSM_MAX_CQE];
} AzihsmCompletion;

typedef struct AzihsmCQ {
    bool created;
    uint16_t qid;
    uint64_t base;
    uint32_t size;
    uint32_t head;
    uint32_t tail;
    bool phase;
    bool ien;
    uint16_t vector;
    uint32_t sq_refs;       /* SQs completing into this CQ */
    uint32_t held_count;
    QSIMPLEQ_HEAD(, AzihsmCompletion) held;
} AzihsmCQ;

typedef struct AzihsmSQ {
    bool created;
    uint16_t qid;
    uint16_t cqid;
    uint64_t base;
    uint32_t size;
    uint32_t head;
    uint32_t tail;
    uint32_t gen;
} AzihsmSQ;

/* One data block of an AES SGL (docs/device.md, AES path). */
typedef struct AzihsmSeg {
    uint64_t addr;
    uint32_t len;
} AzihsmSeg;

/*
 * A held completion as it travels in the migration stream
 * (docs/device.md, Migration): the CQ's held list, flattened.
 */
typedef struct AzihsmHeldMig {
    uint16_t cqid;
    uint16_t sqid;
    uint32_t sq_gen;
    uint16_t sqhd;
    uint16_t status;
    uint8_t cqe[AZIHSM_MAX_CQE];
} AzihsmHeldMig;

/* An HSM or AES command forwarded to the backend and not yet answered. */
typedef struct AzihsmRequest {
    struct AzihsmState *s;
    bool in_use;
    uint32_t msg_id;
    uint16_t sqid;
    uint32_t sq_gen;
    uint16_t cid;
    uint8_t session_flags;
    uint16_t session_id;
    uint32_t dst_len;
    uint64_t dst_prp[2];
    /* AES commands only */
    bool aes;
    uint16_t attr;
    GArray *dst_segs;       /* AzihsmSeg: the destination SGL's data blocks */
    uint32_t dst_sgl_len;
    uint64_t dst_tail_addr;
    uint8_t dst_tail_cap;
    QEMUTimer timer;
} AzihsmRequest;

struct AzihsmState {
    PCIDevice parent_obj;

    MemoryRegion bar0;
    MemoryRegion bar2;
    MemoryRegion bar4;

    /* properties */
    CharBackend chr;
    char *serial;
    uint32_t partition;
    uint32_t res_cnt_default;
    uint32_t backend_timeout_ms;
    uint32_t ready_timeout_ms;
    uint32_t migrate_drain_ms;

    /* controller registers */
    uint32_t cc;
    uint32_t aqa;
    uint64_t asq;
    uint64_t acq;
    bool fatal;             /* CSTS.CFS from a guest error */
    bool nssro;
    bool ready;             /* CSTS.RDY: enabled, and the link settled */
    int64_t enable_ms;      /* QEMU_CLOCK_VIRTUAL time of CC.EN 0->1 */
    QEMUTimer ready_timer;  /* ready-timeout-ms after CC.EN 0->1 */
    uint32_t res_cnt;

    AzihsmSQ sq[AZIHSM_NUM_SLOTS];
    AzihsmCQ cq[AZIHSM_NUM_SLOTS];
    QEMUBH *process_bh;

    /* backend link */
    AzihsmLinkState link;
    bool rot_failed;        /* HELLO_ACK result 3: CSTS.CFS until accepted */
    bool rx_broken;         /* protocol error seen: disconnect pending */
    uint16_t credits;
    uint16_t backend_minor; /* HELLO_ACK minor: AES needs LINK_AES_MINOR */
    uint32_t next_msg_id;
    uint32_t inflight;
    AzihsmRequest req[LINK_MAX_INFLIGHT];
    GByteArray *txbuf;
    guint tx_watch;
    QEMUBH *link_bh;
    bool tx_inline;         /* a doorbell write flushes txbuf itself */
    uint8_t rx_hdr[LINK_HDR_SIZE];
    uint8_t *rx_body;       /* the current frame's body, sized to it */
    uint32_t rx_have;
    uint32_t rx_body_len;
    bool rx_in_body;

    /* introspection */
    uint64_t commands_completed;
    uint64_t commands_failed;

    /* migration (docs/device.md, Migration) */
    bool hold_posts;        /* pre_save: completions stay held */
    bool chr_open;          /* the chardev is connected (HELLO may be sent) */
    bool draining;          /* source: no new HSM/AES fetch while migrating */
    int64_t drain_start_ms; /* QEMU_CLOCK_REALTIME when draining began */
    bool parked;            /* no HELLO: incoming, or migrated away */
    bool migrated_out;      /* source after a completed migration */
    bool lm_reset_pending;  /* send RESET kind 2 after the next HELLO_ACK */
    bool lm_reset_wait;     /* RESET kind 2 sent: hold HSM/AES until ack */
    bool lm_busy;           /* HELLO_ACK busy: the source still holds it */
    int64_t lm_deadline_ms; /* QEMU_CLOCK_REALTIME: stop holding commands */
    QEMUTimer lm_timer;
    uint32_t lm_resets;     /* post-migration NSSRs sent (introspection) */
    uint32_t mig_res_cnt_default;   /* the source's res-cnt property */
    uint32_t mig_slots;
    uint32_t mig_max_inflight;
    int32_t mig_held_count;
    AzihsmHeldMig *mig_held;
    /* the partition's migration context (docs/device.md, Migration) */
    int lm_ctx_phase;       /* source: AzihsmLmCtxPhase */
    int64_t lm_ctx_deadline_ms;
    QEMUTimer lm_ctx_timer;
    uint8_t *lm_ctx;        /* sealed context: from the backend or the stream */
    uint32_t lm_ctx_len;    /* 0: none */
    const char *lm_ctx_state;   /* QOM migration-context */
    uint32_t lm_ctx_status; /* QOM migration-context-status: the last answer */
    VMChangeStateEntry *vmstate_change;
    NotifierWithReturn migration_notifier;
};

/* Queue bookkeeping */

static inline AzihsmQueueKind azihsm_qid_kind(uint16_t qid)
{
    if (qid == 0) {
        return QK_ADMIN;
    }
    return qid < AZIHSM_AES_QID_FIRST ? QK_HSM : QK_AES;
}

static inline uint32_t azihsm_hsm_queue_count(AzihsmState *s)
{
    return s->res_cnt;
}

static inline uint32_t azihsm_aes_queue_count(AzihsmState *s)
{
    return 2 * s->res_cnt;
}

/* Slot of @qid in the queue arrays, or -1 if no queue can have that qid. */
static inline int azihsm_slot(uint16_t qid)
{
    switch (azihsm_qid_kind(qid)) {
    case QK_ADMIN:
        return 0;
    case QK_HSM:
        return qid <= AZIHSM_MAX_HSM_QUEUES ? qid : -1;
    default:
        return qid - AZIHSM_AES_QID_FIRST < AZIHSM_MAX_AES_QUEUES ?
               1 + AZIHSM_MAX_HSM_QUEUES + qid - AZIHSM_AES_QID_FIRST : -1;
    }
}

static inline AzihsmSQ *azihsm_find_sq(AzihsmState *s, uint16_t qid)
{
    int slot = azihsm_slot(qid);

    return slot >= 0 && s->sq[slot].created ? &s->sq[slot] : NULL;
}

static inline AzihsmCQ *azihsm_find_cq(AzihsmState *s, uint16_t qid)
{
    int slot = azihsm_slot(qid);

    return slot >= 0 && s->cq[slot].created ? &s->cq[slot] : NULL;
}

/* azihsm.c */
bool azihsm_prp_ok(AzihsmState *s, uint64_t prp, uint32_t len);
void azihsm_complete(AzihsmState *s, AzihsmSQ *sq, uint16_t status,
                     const uint8_t *cqe);
void azihsm_cq_drop_held(AzihsmCQ *cq);
void azihsm_req_fail_all(AzihsmState *s, uint16_t status);
void azihsm_hsm_response(AzihsmState *s, uint32_t msg_id,
                         uint8_t *body, uint32_t len);
void azihsm_aes_response(AzihsmState *s, uint32_t msg_id,
                         uint8_t *body, uint32_t len);
unsigned azihsm_hsm_abort_sq(AzihsmState *s, AzihsmSQ *sq);
void azihsm_kick(AzihsmState *s);
void azihsm_set_ready(AzihsmState *s);
bool azihsm_fetch_paused(AzihsmState *s);

/* Source side of the migration context (docs/device.md, Migration). */
typedef enum AzihsmLmCtxPhase {
    LM_CTX_IDLE,            /* nothing asked, or the answer is in */
    LM_CTX_DRAIN,           /* waiting for requests to drain before the GET */
    LM_CTX_WAIT,            /* GET sent, waiting for the answer */
} AzihsmLmCtxPhase;

void azihsm_lm_ctx_answer(AzihsmState *s, const uint8_t *body, uint32_t len);
void azihsm_lm_ctx_set_ack(AzihsmState *s, const uint8_t *body, uint32_t len);
void azihsm_lm_ctx_hand_over(AzihsmState *s);
void azihsm_lm_ctx_link_lost(AzihsmState *s);

/* azihsm-admin.c */
void azihsm_admin_submit(AzihsmState *s, AzihsmSQ *sq, const uint8_t *sqe);

/* azihsm-link.c */
const char *azihsm_link_state_name(AzihsmState *s);
void azihsm_link_send(AzihsmState *s, uint8_t type, uint32_t msg_id,
                      const void *body, uint32_t body_len,
                      const void *payload, uint32_t payload_len);
void azihsm_link_push(AzihsmState *s);
void azihsm_link_send_reset(AzihsmState *s, uint32_t kind);
void azihsm_link_send_cancel(AzihsmState *s, uint32_t msg_id);
void azihsm_link_start_handshake(AzihsmState *s);
void azihsm_link_park(AzihsmState *s);
void azihsm_link_realize(AzihsmState *s);
void azihsm_link_unrealize(AzihsmState *s);

#endif
