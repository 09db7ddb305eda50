/*
 * Azure Integrated HSM PCIe function (1414:C003)
 *
 * The guest sees an NVMe-like controller: controller registers in BAR0,
 * doorbells in BAR2, a 32-vector MSI-X table in BAR4, an NVMe admin queue,
 * vendor "HSM" I/O queues (qid 1..n, 64 B SQE / 16 B CQE) and vendor "AES"
 * I/O queues (qid 256..256+m-1, 128 B SQE / 64 B CQE).
 *
 * The device does no HSM work itself: every HSM-queue command is forwarded
 * to an out-of-process backend over a chardev (docs/link-protocol.md) and
 * its answer is DMAed back and completed.  AES commands are parsed here
 * (SGL walk, tail buffer), forwarded as AES_REQUEST and their output is
 * scattered back; the crypto is in the backend (docs/device.md, AES path).
 *
 * This file is the PCI function: registers, BARs, MSI-X, queues and
 * completions, HSM and AES commands, DMA/PRP, QOM properties, lifecycle.
 * The admin commands are in azihsm-admin.c, the backend link in
 * azihsm-link.c, and what they share in azihsm.h.
 *
 * Specifications: docs/device.md (the function as emulated),
 * docs/link-protocol.md (backend link).
 *
 * Usage:
 *   -chardev socket,id=hsm0,path=SOCK,reconnect-ms=500
 *   -device azihsm,chardev=hsm0[,serial=S,partition=N,res-cnt=N,
 *           backend-timeout-ms=N,ready-timeout-ms=N]
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "hw/pci/pcie.h"
#include "hw/pci/msix.h"
#include "hw/qdev-properties.h"
#include "hw/qdev-properties-system.h"
#include "migration/vmstate.h"
#include "migration/misc.h"
#include "system/dma.h"
#include "exec/memory.h"
#include "azihsm.h"
#include "trace.h"

/* BAR0 register offsets (docs/device.md, PCI function) */
enum {
    REG_CAP     = 0x00,
    REG_VS      = 0x08,
    REG_CC      = 0x14,
    REG_CSTS    = 0x1C,
    REG_NSSR    = 0x20,
    REG_AQA     = 0x24,
    REG_ASQ     = 0x28,
    REG_ACQ     = 0x30,
};

#define AZIHSM_CAP_VALUE        (AZIHSM_MQES | 1ULL << 16 /* CQR */ | \
                                 0x0FULL << 24 /* TO */ | 1ULL << 36 /* NSSRS */ | \
                                 1ULL << 37 /* CSS: NVM */)
/* CAP.TO 15: the driver waits (15 + 1) * 500 ms = 8 s for CSTS.RDY */
#define AZIHSM_READY_TIMEOUT_MS 5000
#define AZIHSM_CC_EN            1u
#define AZIHSM_CC_ENTRY_SIZES   0xFFFF0000u /* CP/FP IOSQES/IOCQES */
#define AZIHSM_CSTS_RDY         1u
#define AZIHSM_CSTS_CFS         2u
#define AZIHSM_CSTS_NSSRO       16u
#define AZIHSM_NSSR_MAGIC       0x4E564D65  /* "NVMe" */

/* Session side band: SQE byte 44 / CQE byte 2 */
#define SESS_OP_MASK            3
#define SESS_OP_CLOSE           2
#define SESS_ID_VALID           4
#define SESS_SAFE_TO_CLOSE      16

/* HSM request limits */
#define AZIHSM_MAX_XFER         8192
#define AZIHSM_HSM_OPC_MAX      1           /* 0 = MBOR request, 1 = flush */

const AzihsmQueueFormat azihsm_formats[] = {
    [QK_ADMIN] = { "admin", 64, 16, 8, 10, 12, 14 },
    [QK_HSM]   = { "hsm",   64, 16, 8, 10, 12, 14 },
    [QK_AES]   = { "aes",  128, 64, 56, 58, 2, 62 },
};

/* ------------------------------------------------------------------------
 * Queue bookkeeping
 * ------------------------------------------------------------------------ */

static bool azihsm_enabled(AzihsmState *s)
{
    return s->cc & AZIHSM_CC_EN;
}

/* Set CSTS.CFS: the guest did something the controller cannot survive. */
static void azihsm_set_fatal(AzihsmState *s, const char *why)
{
    trace_azihsm_fatal(why);
    qemu_log_mask(LOG_GUEST_ERROR, "azihsm: controller fatal status: %s\n",
                  why);
    s->fatal = true;
}

/*
 * True if [addr, addr+len) is guest RAM reachable by this function's DMA.
 * Queue bases and PRPs must point at RAM, never at MMIO.
 */
static bool azihsm_is_ram(AzihsmState *s, uint64_t addr, uint64_t len)
{
    AddressSpace *as = pci_get_address_space(PCI_DEVICE(s));
    int chunks;

    if (len == 0 || addr + len < addr) {
        return len == 0;
    }
    RCU_READ_LOCK_GUARD();
    /* Each chunk is one contiguous region; 8 is far more than any mapping. */
    for (chunks = 0; len && chunks < 8; chunks++) {
        hwaddr xlat, plen = len;
        MemoryRegion *mr = address_space_translate(as, addr, &xlat, &plen,
                                                   true,
                                                   MEMTXATTRS_UNSPECIFIED);
        if (!memory_region_is_ram(mr) || memory_region_is_rom(mr) ||
            plen == 0) {
            return false;
        }
        plen = MIN(plen, len);
        addr += plen;
        len -= plen;
    }
    return len == 0;
}

/* A PRP must be page aligned and its page(s) inside guest RAM. */
bool azihsm_prp_ok(AzihsmState *s, uint64_t prp, uint32_t len)
{
    return (prp & (AZIHSM_PAGE_SIZE - 1)) == 0 && azihsm_is_ram(s, prp, len);
}

/* ------------------------------------------------------------------------
 * Completion posting
 * ------------------------------------------------------------------------ */

static bool azihsm_cq_full(AzihsmCQ *cq)
{
    return (cq->tail + 1) % cq->size == cq->head;
}

static void azihsm_cq_notify(AzihsmState *s, AzihsmCQ *cq)
{
    if (cq->ien) {
        trace_azihsm_irq(cq->qid, cq->vector);
        msix_notify(PCI_DEVICE(s), cq->vector);
    }
}

/* Write held completions into the CQ while it has room; interrupt after. */
static void azihsm_cq_post(AzihsmState *s, AzihsmCQ *cq)
{
    const AzihsmQueueFormat *fmt = &azihsm_formats[azihsm_qid_kind(cq->qid)];
    AzihsmCompletion *c;
    bool posted = false;

    if (s->hold_posts) {
        return;     /* saving device state: guest RAM is already sent */
    }
    while ((c = QSIMPLEQ_FIRST(&cq->held)) != NULL) {
        AzihsmSQ *sq = azihsm_find_sq(s, c->sqid);
        uint64_t addr = cq->base + (uint64_t)cq->tail * fmt->cqe_size;
        uint16_t sqhd = sq && sq->gen == c->sq_gen ? sq->head : c->sqhd;

        if (azihsm_cq_full(cq)) {
            trace_azihsm_cq_full(cq->qid, cq->held_count);
            break;
        }
        stw_le_p(c->cqe + fmt->cqe_sqhd, sqhd);
        stw_le_p(c->cqe + fmt->cqe_sqid, c->sqid);
        stw_le_p(c->cqe + fmt->cqe_status, c->status << 1 | cq->phase);
        trace_azihsm_cqe_post(cq->qid, cq->tail,
                              lduw_le_p(c->cqe + fmt->cqe_cid), c->status,
                              sqhd);
        if (pci_dma_write(PCI_DEVICE(s), addr, c->cqe, fmt->cqe_size)) {
            azihsm_set_fatal(s, "completion queue write failed");
        }
        cq->tail++;
        if (cq->tail == cq->size) {
            cq->tail = 0;
            cq->phase = !cq->phase;
        }
        QSIMPLEQ_REMOVE_HEAD(&cq->held, next);
        cq->held_count--;
        g_free(c);
        posted = true;
    }
    if (posted) {
        azihsm_cq_notify(s, cq);
    }
}

/*
 * Complete one command of SQ @sq with @status.  @cqe holds the
 * command-specific CQE bytes; the queue fields are filled when posted.
 */
void azihsm_complete(AzihsmState *s, AzihsmSQ *sq, uint16_t status,
                     const uint8_t *cqe)
{
    const AzihsmQueueFormat *fmt = &azihsm_formats[azihsm_qid_kind(sq->qid)];
    AzihsmCQ *cq = azihsm_find_cq(s, sq->cqid);
    AzihsmCompletion *c;

    if (!cq) {
        /* Create SQ requires its CQ and Delete CQ refuses while used. */
        error_report("azihsm: SQ %u completes into missing CQ %u",
                     sq->qid, sq->cqid);
        return;
    }
    if (sq->qid != 0) {
        s->commands_completed++;
        s->commands_failed += status != ST_SUCCESS;
    }
    c = g_new0(AzihsmCompletion, 1);
    c->sqid = sq->qid;
    c->sq_gen = sq->gen;
    c->sqhd = sq->head;
    c->status = status & 0x7ff;
    memcpy(c->cqe, cqe, fmt->cqe_size);
    QSIMPLEQ_INSERT_TAIL(&cq->held, c, next);
    cq->held_count++;
    azihsm_cq_post(s, cq);
}

void azihsm_cq_drop_held(AzihsmCQ *cq)
{
    AzihsmCompletion *c;

    while ((c = QSIMPLEQ_FIRST(&cq->held)) != NULL) {
        QSIMPLEQ_REMOVE_HEAD(&cq->held, next);
        g_free(c);
    }
    cq->held_count = 0;
}

/* ------------------------------------------------------------------------
 * HSM queue commands
 * ------------------------------------------------------------------------ */

/* Session flags the device reports when it fails a command itself. */
static uint8_t azihsm_error_session_flags(uint8_t sqe_flags)
{
    uint8_t op = sqe_flags & SESS_OP_MASK;

    return op == SESS_OP_CLOSE ? op | SESS_ID_VALID | SESS_SAFE_TO_CLOSE : op;
}

static void azihsm_hsm_complete(AzihsmState *s, AzihsmSQ *sq, uint16_t cid,
                                uint16_t status, uint16_t byte_count,
                                uint8_t flags, uint16_t session_id,
                                uint8_t short_app_id)
{
    uint8_t cqe[AZIHSM_MAX_CQE] = { 0 };

    stw_le_p(cqe + 0, byte_count);
    cqe[2] = flags;
    stw_le_p(cqe + 4, session_id);
    cqe[6] = short_app_id;
    stw_le_p(cqe + 12, cid);
    trace_azihsm_hsm_complete(sq->qid, cid, status, byte_count, flags);
    azihsm_complete(s, sq, status, cqe);
}

/* Fail a command the device answers itself (never reached the backend). */
static void azihsm_hsm_fail(AzihsmState *s, AzihsmSQ *sq, uint16_t cid,
                            uint16_t status, uint8_t sqe_flags,
                            uint16_t session_id)
{
    azihsm_hsm_complete(s, sq, cid, status, 0,
                        azihsm_error_session_flags(sqe_flags), session_id, 0);
}

/* Post an AES CQE (docs/device.md, AES path: the CQE). */
static void azihsm_aes_complete(AzihsmState *s, AzihsmSQ *sq, uint16_t attr,
                                uint16_t cid, uint16_t status, uint16_t err,
                                const uint8_t *tag, const uint8_t *iv,
                                uint32_t tail_len, uint32_t fips, uint32_t len)
{
    uint8_t cqe[AZIHSM_MAX_CQE] = { 0 };

    stw_le_p(cqe + 0, attr);
    stw_le_p(cqe + 2, cid);
    if (tag) {
        memcpy(cqe + 4, tag, 16);
    }
    if (iv) {
        memcpy(cqe + 20, iv, 12);
    }
    stl_le_p(cqe + 44, tail_len);
    stl_le_p(cqe + 48, fips);
    stl_le_p(cqe + 52, len);
    stw_le_p(cqe + 60, err);
    trace_azihsm_aes_complete(sq->qid, cid, status, err, len);
    azihsm_complete(s, sq, status, cqe);
}

/* An AES command the device fails itself: err repeats the status. */
static void azihsm_aes_fail(AzihsmState *s, AzihsmSQ *sq, uint16_t attr,
                            uint16_t cid, uint16_t status)
{
    azihsm_aes_complete(s, sq, attr, cid, status, status, NULL, NULL, 0, 0, 0);
}

static uint32_t azihsm_credit_limit(AzihsmState *s)
{
    return MIN(s->credits, LINK_MAX_INFLIGHT);
}

static AzihsmRequest *azihsm_req_find(AzihsmState *s, uint32_t msg_id)
{
    for (int i = 0; i < LINK_MAX_INFLIGHT; i++) {
        if (s->req[i].in_use && s->req[i].msg_id == msg_id) {
            return &s->req[i];
        }
    }
    return NULL;
}

/* Forget what an AES request holds. */
static void azihsm_req_clear(AzihsmRequest *r)
{
    if (r->dst_segs) {
        g_array_free(r->dst_segs, true);
        r->dst_segs = NULL;
    }
    r->aes = false;
}

static void azihsm_req_release(AzihsmState *s, AzihsmRequest *r)
{
    timer_del(&r->timer);
    azihsm_req_clear(r);
    r->in_use = false;
    s->inflight--;
    azihsm_kick(s);     /* a credit is free: fetching may resume */
}

/* Complete an outstanding request without a backend answer. */
static void azihsm_req_fail(AzihsmState *s, AzihsmRequest *r, uint16_t status)
{
    AzihsmSQ *sq = azihsm_find_sq(s, r->sqid);

    if (sq && sq->gen == r->sq_gen) {
        if (r->aes) {
            azihsm_aes_fail(s, sq, r->attr, r->cid, status);
        } else {
            azihsm_hsm_fail(s, sq, r->cid, status, r->session_flags,
                            r->session_id);
        }
    }
    azihsm_req_release(s, r);
}

/* Every outstanding request fails with @status (link loss). */
void azihsm_req_fail_all(AzihsmState *s, uint16_t status)
{
    for (int i = 0; i < LINK_MAX_INFLIGHT; i++) {
        if (s->req[i].in_use) {
            azihsm_req_fail(s, &s->req[i], status);
        }
    }
}

/* Forget every outstanding request: its queue no longer exists. */
static void azihsm_req_forget_all(AzihsmState *s)
{
    for (int i = 0; i < LINK_MAX_INFLIGHT; i++) {
        if (s->req[i].in_use) {
            timer_del(&s->req[i].timer);
            azihsm_req_clear(&s->req[i]);
            s->req[i].in_use = false;
        }
    }
    s->inflight = 0;
}

static void azihsm_req_timeout(void *opaque)
{
    AzihsmRequest *r = opaque;
    AzihsmState *s = r->s;
    uint32_t msg_id = r->msg_id;

    trace_azihsm_link_timeout(msg_id);
    azihsm_req_fail(s, r, ST_BACKEND_TIMEOUT);
    azihsm_link_send_cancel(s, msg_id);
}

static uint32_t azihsm_next_msg_id(AzihsmState *s)
{
    uint32_t id;

    do {
        id = ++s->next_msg_id;
    } while (azihsm_req_find(s, id));
    return id;
}

/*
 * A free outstanding-request slot for command @cid of @sq, marked in use
 * with a fresh msg_id. The fetch loop checks credits first, so a slot is
 * always free.
 */
static AzihsmRequest *azihsm_claim_request(AzihsmState *s, AzihsmSQ *sq,
                                           uint16_t cid)
{
    AzihsmRequest *r = NULL;

    for (int i = 0; i < LINK_MAX_INFLIGHT && !r; i++) {
        r = s->req[i].in_use ? NULL : &s->req[i];
    }
    g_assert(r);
    r->in_use = true;
    r->msg_id = azihsm_next_msg_id(s);
    r->sqid = sq->qid;
    r->sq_gen = sq->gen;
    r->cid = cid;
    return r;
}

/* Move @len bytes to or from a two-page PRP pair (PRP2 only past 4 KiB). */
static MemTxResult azihsm_prp_rw(AzihsmState *s, const uint64_t prp[2],
                                 uint8_t *buf, uint32_t len, DMADirection dir)
{
    uint32_t first = MIN(len, AZIHSM_PAGE_SIZE);
    MemTxResult r = pci_dma_rw(PCI_DEVICE(s), prp[0], buf, first, dir,
                               MEMTXATTRS_UNSPECIFIED);

    if (r == MEMTX_OK && len > first) {
        r = pci_dma_rw(PCI_DEVICE(s), prp[1], buf + first, len - first, dir,
                       MEMTXATTRS_UNSPECIFIED);
    }
    return r;
}

static bool azihsm_prps_ok(AzihsmState *s, const uint64_t prp[2],
                           uint32_t len)
{
    uint32_t first = MIN(len, AZIHSM_PAGE_SIZE);

    if (len == 0) {
        return true;
    }
    return azihsm_prp_ok(s, prp[0], first) &&
           (len <= first || azihsm_prp_ok(s, prp[1], len - first));
}

/* Decoded HSM SQE (docs/device.md, HSM queues). */
typedef struct AzihsmHsmCmd {
    uint16_t opc;
    uint8_t cmdset;
    uint8_t psdt;
    uint16_t cid;
    uint32_t src_len;
    uint64_t src_prp[2];
    uint32_t dst_len;
    uint64_t dst_prp[2];
    uint8_t session_flags;
    uint16_t session_id;
} AzihsmHsmCmd;

static void azihsm_hsm_decode(const uint8_t *sqe, AzihsmHsmCmd *cmd)
{
    uint32_t dw0 = ldl_le_p(sqe);

    cmd->opc = dw0 & 0x3ff;
    cmd->cmdset = (dw0 >> 10) & 0xf;
    cmd->psdt = (dw0 >> 14) & 0x3;
    cmd->cid = dw0 >> 16;
    cmd->src_len = ldl_le_p(sqe + 4);
    cmd->src_prp[0] = ldq_le_p(sqe + 8);
    cmd->src_prp[1] = ldq_le_p(sqe + 16);
    cmd->dst_len = ldl_le_p(sqe + 24);
    cmd->dst_prp[0] = ldq_le_p(sqe + 28);
    cmd->dst_prp[1] = ldq_le_p(sqe + 36);
    cmd->session_flags = sqe[44];
    cmd->session_id = lduw_le_p(sqe + 48);
}

/* Status of a command's own fields, before anything is sent. */
static uint16_t azihsm_hsm_validate(AzihsmState *s, const AzihsmHsmCmd *cmd)
{
    if (cmd->opc > AZIHSM_HSM_OPC_MAX) {
        qemu_log_mask(LOG_GUEST_ERROR, "azihsm: HSM opcode %u invalid\n",
                      cmd->opc);
        return ST_INVALID_OPCODE;
    }
    if (cmd->cmdset || cmd->psdt ||
        cmd->src_len > AZIHSM_MAX_XFER || cmd->dst_len > AZIHSM_MAX_XFER) {
        qemu_log_mask(LOG_GUEST_ERROR, "azihsm: HSM command fields invalid "
                      "(cmdset %u psdt %u src_len %u dst_len %u)\n",
                      cmd->cmdset, cmd->psdt, cmd->src_len, cmd->dst_len);
        return ST_INVALID_FIELD;
    }
    if (!azihsm_prps_ok(s, cmd->src_prp, cmd->src_len) ||
        !azihsm_prps_ok(s, cmd->dst_prp, cmd->dst_len)) {
        qemu_log_mask(LOG_GUEST_ERROR, "azihsm: HSM command PRP unaligned "
                      "or outside RAM (src 0x%" PRIx64 "/0x%" PRIx64
                      " dst 0x%" PRIx64 "/0x%" PRIx64 ")\n",
                      cmd->src_prp[0], cmd->src_prp[1],
                      cmd->dst_prp[0], cmd->dst_prp[1]);
        return ST_DATA_TRANSFER;
    }
    return ST_SUCCESS;
}

/* Execute one fetched HSM SQE: fail it at once or forward it. */
static void azihsm_hsm_submit(AzihsmState *s, AzihsmSQ *sq,
                              const uint8_t *sqe)
{
    g_autofree uint8_t *payload = NULL;
    uint8_t body[LINK_REQ_FIXED];
    AzihsmHsmCmd cmd;
    AzihsmRequest *r = NULL;
    uint16_t status;

    azihsm_hsm_decode(sqe, &cmd);
    status = azihsm_hsm_validate(s, &cmd);
    if (status == ST_SUCCESS && s->link != LINK_UP) {
        status = ST_BACKEND_UNAVAILABLE;
    }
    if (status == ST_SUCCESS) {
        payload = g_malloc(MAX(cmd.src_len, 1));
        if (azihsm_prp_rw(s, cmd.src_prp, payload, cmd.src_len,
                          DMA_DIRECTION_TO_DEVICE)) {
            status = ST_DATA_TRANSFER;
        }
    }
    if (status != ST_SUCCESS) {
        trace_azihsm_hsm_submit(sq->qid, cmd.cid, cmd.opc, cmd.src_len,
                                cmd.dst_len, cmd.session_flags, 0);
        azihsm_hsm_fail(s, sq, cmd.cid, status, cmd.session_flags,
                        cmd.session_id);
        return;
    }

    r = azihsm_claim_request(s, sq, cmd.cid);
    r->session_flags = cmd.session_flags;
    r->session_id = cmd.session_id;
    r->dst_len = cmd.dst_len;
    r->dst_prp[0] = cmd.dst_prp[0];
    r->dst_prp[1] = cmd.dst_prp[1];
    s->inflight++;
    trace_azihsm_hsm_submit(sq->qid, cmd.cid, cmd.opc, cmd.src_len,
                            cmd.dst_len, cmd.session_flags, r->msg_id);

    stw_le_p(body + 0, sq->qid);
    stw_le_p(body + 2, cmd.cid);
    stw_le_p(body + 4, cmd.opc);
    body[6] = cmd.session_flags;
    body[7] = 0;
    stw_le_p(body + 8, cmd.session_id);
    stw_le_p(body + 10, 0);
    stl_le_p(body + 12, cmd.dst_len);
    stl_le_p(body + 16, cmd.src_len);
    /* Arm first: a send that kills the link releases the request. */
    timer_mod(&r->timer, qemu_clock_get_ms(QEMU_CLOCK_VIRTUAL) +
              s->backend_timeout_ms);
    azihsm_link_send(s, MSG_REQUEST, r->msg_id, body, sizeof(body),
                     payload, cmd.src_len);
}

/* A RESPONSE frame arrived: finish its request. */
void azihsm_hsm_response(AzihsmState *s, uint32_t msg_id,
                         uint8_t *body, uint32_t len)
{
    AzihsmRequest *r = azihsm_req_find(s, msg_id);
    AzihsmSQ *sq;
    uint16_t status;
    uint32_t byte_count;

    if (!r) {
        trace_azihsm_link_drop(msg_id);
        return;
    }
    sq = azihsm_find_sq(s, r->sqid);
    if (!sq || sq->gen != r->sq_gen) {
        /* Level-1 abort and resets forget requests, so this is a bug. */
        error_report("azihsm: request %u outlived its SQ", msg_id);
        azihsm_req_release(s, r);
        return;
    }
    if (r->aes) {
        warn_report("azihsm: RESPONSE for AES request %u", msg_id);
        azihsm_req_fail(s, r, ST_BACKEND_PROTOCOL);
        return;
    }
    if (len < LINK_RSP_FIXED ||
        (byte_count = ldl_le_p(body + 8)) != len - LINK_RSP_FIXED) {
        warn_report("azihsm: malformed RESPONSE for request %u", msg_id);
        azihsm_req_fail(s, r, ST_BACKEND_PROTOCOL);
        return;
    }
    if (byte_count > r->dst_len) {
        warn_report("azihsm: RESPONSE for request %u has %u bytes, "
                    "buffer holds %u", msg_id, byte_count, r->dst_len);
        azihsm_req_fail(s, r, ST_BACKEND_PROTOCOL);
        return;
    }
    status = lduw_le_p(body);
    if (status > 0x7ff) {
        warn_report("azihsm: RESPONSE status 0x%x does not fit 11 bits",
                    status);
        azihsm_req_fail(s, r, ST_BACKEND_PROTOCOL);
        return;
    }
    if (azihsm_prp_rw(s, r->dst_prp, body + LINK_RSP_FIXED,
                      byte_count, DMA_DIRECTION_FROM_DEVICE)) {
        qemu_log_mask(LOG_GUEST_ERROR, "azihsm: response DMA to 0x%" PRIx64
                      " failed\n", r->dst_prp[0]);
        azihsm_req_fail(s, r, ST_DATA_TRANSFER);
        return;
    }
    azihsm_hsm_complete(s, sq, r->cid, status, byte_count, body[2],
                        lduw_le_p(body + 4), body[3]);
    azihsm_req_release(s, r);
}

/* True if @r is an outstanding command of this incarnation of @sq. */
static bool azihsm_req_of_sq(AzihsmRequest *r, AzihsmSQ *sq)
{
    return r->in_use && r->sqid == sq->qid && r->sq_gen == sq->gen;
}

/* Level-1 abort: the outstanding commands of @sq end with 0x008. */
unsigned azihsm_hsm_abort_sq(AzihsmState *s, AzihsmSQ *sq)
{
    unsigned aborted = 0;

    for (int i = 0; i < LINK_MAX_INFLIGHT; i++) {
        AzihsmRequest *r = &s->req[i];

        if (azihsm_req_of_sq(r, sq)) {
            uint32_t msg_id = r->msg_id;

            azihsm_req_fail(s, r, ST_ABORTED_SQ_DELETED);
            azihsm_link_send_cancel(s, msg_id);
            aborted++;
        }
    }
    return aborted;
}

/* ------------------------------------------------------------------------
 * AES queue commands (docs/device.md, AES path)
 *
 * The device checks the SQE's structure, walks the source and destination
 * SGLs, gathers the source (and the GCM tail buffer) and forwards the
 * command as AES_REQUEST; the backend does the crypto.  The AES_RESPONSE
 * output is scattered into the destination SGL, then the tail buffer.
 * ------------------------------------------------------------------------ */

#define AES_ATTR_DECRYPT        (1u << 0)
#define AES_ATTR_PSDT_SGL       (1u << 2)
#define AES_ATTR_CMD_TYPE(a)    (((a) >> 3) & 7)
#define AES_ATTR_XTS            (1u << 8)
#define AES_ATTR_DUL(a)         (((a) >> 14) & 3)
#define AES_ATTR_RESERVED       0x3EC2u     /* bits 1, 6, 7, 9-13 */
#define AES_CMD_TYPE            5
#define AES_FRAME_TYPE          1
#define AES_MAX_XFER            (1 * MiB)   /* per direction, SGL bytes */
#define AES_MAX_TAIL            15
#define AES_SGL_MAX_DESC        4096        /* descriptors read per SGL */
#define SGL_DESC_SIZE           16
enum {
    SGL_DATA_BLOCK      = 0x0,
    SGL_SEGMENT         = 0x2,
    SGL_LAST_SEGMENT    = 0x3,
};

/* Decoded AES SQE (docs/device.md, AES path: the SQE). */
typedef struct AzihsmAesCmd {
    uint16_t attr;
    uint16_t cid;
    uint16_t session_id;
    uint8_t short_app_id;
    uint32_t src_len;
    const uint8_t *src_sgl;
    uint32_t dst_len;
    const uint8_t *dst_sgl;
    uint8_t frame_type;
    bool xts;
    uint32_t key_id1;
    uint32_t key_id2;
    uint32_t aad_len;
    uint32_t aligned_aad_len;
    const uint8_t *tag_or_tweak;
    const uint8_t *iv;          /* GCM only */
    uint8_t src_tail_len;       /* GCM only */
    uint8_t dst_tail_len;
    uint64_t src_tail_addr;
    uint64_t dst_tail_addr;
} AzihsmAesCmd;

static void azihsm_aes_decode(const uint8_t *sqe, AzihsmAesCmd *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->attr = lduw_le_p(sqe + 4);
    cmd->cid = lduw_le_p(sqe + 6);
    cmd->session_id = lduw_le_p(sqe + 8);
    cmd->short_app_id = sqe[10];
    cmd->src_len = ldl_le_p(sqe + 24);
    cmd->src_sgl = sqe + 28;
    cmd->dst_len = ldl_le_p(sqe + 44);
    cmd->dst_sgl = sqe + 48;
    cmd->frame_type = sqe[64];
    cmd->xts = cmd->attr & AES_ATTR_XTS;
    cmd->key_id1 = ldl_le_p(sqe + 68);
    cmd->tag_or_tweak = sqe + 76;
    if (cmd->xts) {
        cmd->key_id2 = ldl_le_p(sqe + 72);
        return;
    }
    cmd->aad_len = ldl_le_p(sqe + 72);
    cmd->iv = sqe + 92;
    cmd->aligned_aad_len = ldl_le_p(sqe + 104);
    cmd->src_tail_len = sqe[108];
    cmd->dst_tail_len = sqe[109];
    cmd->src_tail_addr = ldq_le_p(sqe + 112);
    cmd->dst_tail_addr = ldq_le_p(sqe + 120);
}

/* Status of the SQE's own fields, before any SGL is read. */
static uint16_t azihsm_aes_validate(AzihsmState *s, const AzihsmAesCmd *cmd)
{
    uint16_t a = cmd->attr;

    if (!(a & AES_ATTR_PSDT_SGL) || AES_ATTR_CMD_TYPE(a) != AES_CMD_TYPE ||
        (a & AES_ATTR_RESERVED) || cmd->frame_type != AES_FRAME_TYPE ||
        (!cmd->xts && AES_ATTR_DUL(a)) ||
        (!cmd->src_len && !cmd->src_tail_len) ||
        (!cmd->dst_len && !cmd->dst_tail_len) ||
        cmd->src_len > AES_MAX_XFER || cmd->dst_len > AES_MAX_XFER ||
        cmd->src_tail_len > AES_MAX_TAIL || cmd->dst_tail_len > AES_MAX_TAIL ||
        (cmd->src_tail_len && !cmd->dst_tail_len)) {
        qemu_log_mask(LOG_GUEST_ERROR, "azihsm: AES SQE fields invalid (attr "
                      "0x%x frame %u src %u dst %u tails %u/%u)\n", a,
                      cmd->frame_type, cmd->src_len, cmd->dst_len,
                      cmd->src_tail_len, cmd->dst_tail_len);
        return ST_INVALID_FIELD;
    }
    if ((cmd->src_tail_len &&
         !azihsm_is_ram(s, cmd->src_tail_addr, cmd->src_tail_len)) ||
        (cmd->dst_tail_len &&
         !azihsm_is_ram(s, cmd->dst_tail_addr, cmd->dst_tail_len))) {
        qemu_log_mask(LOG_GUEST_ERROR, "azihsm: AES tail buffer outside "
                      "RAM\n");
        return ST_DATA_TRANSFER;
    }
    return ST_SUCCESS;
}

/*
 * Walk the SGL whose first descriptor is @desc into its data blocks, which
 * must add up to exactly @total bytes (docs/device.md, AES path: SGLs).
 */
static uint16_t azihsm_sgl_parse(AzihsmState *s, const uint8_t *desc,
                                 uint32_t total, GArray *segs)
{
    uint64_t addr = ldq_le_p(desc);
    uint32_t len = ldl_le_p(desc + 8);
    uint8_t type = desc[15] >> 4;
    uint64_t sum = 0;
    uint32_t budget = AES_SGL_MAX_DESC;
    bool last;

    if (!total) {
        return ST_SUCCESS;      /* all of a GCM source in its tail buffer */
    }
    if (desc[15] & 0xf) {
        return ST_SGL_SUBTYPE_INVALID;
    }
    if (type == SGL_DATA_BLOCK) {
        AzihsmSeg seg = { addr, len };

        if (len && !azihsm_is_ram(s, addr, len)) {
            return ST_DATA_TRANSFER;
        }
        g_array_append_val(segs, seg);
        return len == total ? ST_SUCCESS : ST_SGL_LENGTH_INVALID;
    }
    if (type != SGL_SEGMENT && type != SGL_LAST_SEGMENT) {
        return ST_SGL_TYPE_INVALID;
    }
    last = type == SGL_LAST_SEGMENT;
    for (;;) {
        uint32_t n = len / SGL_DESC_SIZE;
        g_autofree uint8_t *list = NULL;
        bool linked = false;

        if (!len || len % SGL_DESC_SIZE || n > budget) {
            return ST_SGL_COUNT_INVALID;
        }
        budget -= n;
        list = g_malloc(len);
        if (!azihsm_is_ram(s, addr, len) ||
            pci_dma_read(PCI_DEVICE(s), addr, list, len)) {
            return ST_DATA_TRANSFER;
        }
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *d = list + i * SGL_DESC_SIZE;
            uint8_t t = d[15] >> 4;
            uint64_t daddr = ldq_le_p(d);
            uint32_t dlen = ldl_le_p(d + 8);

            if (d[15] & 0xf) {
                return ST_SGL_SUBTYPE_INVALID;
            }
            if (t == SGL_DATA_BLOCK) {
                AzihsmSeg seg = { daddr, dlen };

                sum += dlen;
                if (sum > total) {
                    return ST_SGL_LENGTH_INVALID;
                }
                if (dlen && !azihsm_is_ram(s, daddr, dlen)) {
                    return ST_DATA_TRANSFER;
                }
                if (dlen) {
                    g_array_append_val(segs, seg);
                }
            } else if ((t == SGL_SEGMENT || t == SGL_LAST_SEGMENT) &&
                       !last && i == n - 1) {
                addr = daddr;
                len = dlen;
                last = t == SGL_LAST_SEGMENT;
                linked = true;
            } else {
                /* unknown type, or a link that is not a segment's last */
                return ST_SGL_TYPE_INVALID;
            }
        }
        if (!linked) {
            /* a segment that is not the last must end with a link */
            if (!last) {
                return ST_SGL_TYPE_INVALID;
            }
            break;
        }
    }
    return sum == total ? ST_SUCCESS : ST_SGL_LENGTH_INVALID;
}

/* Move bytes [@off, @off+@len) of an SGL's data to or from @buf. */
static MemTxResult azihsm_sgl_rw(AzihsmState *s, GArray *segs, uint32_t off,
                                 uint8_t *buf, uint32_t len, DMADirection dir)
{
    for (guint i = 0; i < segs->len && len; i++) {
        AzihsmSeg *seg = &g_array_index(segs, AzihsmSeg, i);
        uint32_t n;
        MemTxResult r;

        if (off >= seg->len) {
            off -= seg->len;
            continue;
        }
        n = MIN(seg->len - off, len);
        r = pci_dma_rw(PCI_DEVICE(s), seg->addr + off, buf, n, dir,
                       MEMTXATTRS_UNSPECIFIED);
        if (r != MEMTX_OK) {
            return r;
        }
        buf += n;
        len -= n;
        off = 0;
    }
    return len ? MEMTX_ERROR : MEMTX_OK;
}

/* Execute one fetched AES SQE: fail it at once or forward it. */
static void azihsm_aes_submit(AzihsmState *s, AzihsmSQ *sq,
                              const uint8_t *sqe)
{
    g_autoptr(GArray) src = g_array_new(false, false, sizeof(AzihsmSeg));
    g_autoptr(GArray) dst = g_array_new(false, false, sizeof(AzihsmSeg));
    g_autofree uint8_t *payload = NULL;
    uint8_t body[LINK_AES_REQ_FIXED] = { 0 };
    uint32_t data_len;
    AzihsmAesCmd cmd;
    AzihsmRequest *r = NULL;
    uint16_t status;

    azihsm_aes_decode(sqe, &cmd);
    status = azihsm_aes_validate(s, &cmd);
    if (status == ST_SUCCESS) {
        status = azihsm_sgl_parse(s, cmd.src_sgl, cmd.src_len, src);
    }
    if (status == ST_SUCCESS) {
        status = azihsm_sgl_parse(s, cmd.dst_sgl, cmd.dst_len, dst);
    }
    if (status == ST_SUCCESS && s->link != LINK_UP) {
        status = ST_BACKEND_UNAVAILABLE;
    }
    if (status == ST_SUCCESS && s->backend_minor < LINK_AES_MINOR) {
        status = ST_NOT_SUPPORTED;
    }
    data_len = cmd.src_len + cmd.src_tail_len;
    if (status == ST_SUCCESS) {
        payload = g_malloc(data_len);
        if (azihsm_sgl_rw(s, src, 0, payload, cmd.src_len,
                          DMA_DIRECTION_TO_DEVICE) ||
            (cmd.src_tail_len &&
             pci_dma_read(PCI_DEVICE(s), cmd.src_tail_addr,
                          payload + cmd.src_len, cmd.src_tail_len))) {
            status = ST_DATA_TRANSFER;
        }
    }
    if (status != ST_SUCCESS) {
        qemu_log_mask(LOG_GUEST_ERROR, "azihsm: AES SQ %u cid %u failed "
                      "with 0x%x before the backend\n", sq->qid, cmd.cid,
                      status);
        azihsm_aes_fail(s, sq, cmd.attr, cmd.cid, status);
        return;
    }

    r = azihsm_claim_request(s, sq, cmd.cid);
    r->aes = true;
    r->attr = cmd.attr;
    r->dst_segs = g_steal_pointer(&dst);
    r->dst_sgl_len = cmd.dst_len;
    r->dst_tail_addr = cmd.dst_tail_addr;
    r->dst_tail_cap = cmd.dst_tail_len;
    s->inflight++;

    body[0] = LINK_AES_VERSION;
    body[1] = cmd.xts;
    body[2] = cmd.attr & AES_ATTR_DECRYPT;
    body[3] = AES_ATTR_DUL(cmd.attr);
    stw_le_p(body + 4, sq->qid);
    stw_le_p(body + 6, cmd.cid);
    stw_le_p(body + 8, cmd.session_id);
    body[10] = cmd.short_app_id;
    stl_le_p(body + 12, cmd.key_id1);
    stl_le_p(body + 16, cmd.key_id2);
    stl_le_p(body + 20, cmd.aad_len);
    stl_le_p(body + 24, cmd.aligned_aad_len);
    memcpy(body + 28, cmd.tag_or_tweak, 16);
    if (cmd.iv) {
        memcpy(body + 44, cmd.iv, 12);
    }
    stl_le_p(body + 56, cmd.src_tail_len);
    stl_le_p(body + 60, cmd.dst_len + cmd.dst_tail_len);
    stl_le_p(body + 64, data_len);
    timer_mod(&r->timer, qemu_clock_get_ms(QEMU_CLOCK_VIRTUAL) +
              s->backend_timeout_ms);
    azihsm_link_send(s, MSG_AES_REQUEST, r->msg_id, body, sizeof(body),
                     payload, data_len);
}

/* An AES_RESPONSE frame arrived: scatter its output and complete. */
void azihsm_aes_response(AzihsmState *s, uint32_t msg_id,
                         uint8_t *body, uint32_t len)
{
    AzihsmRequest *r = azihsm_req_find(s, msg_id);
    AzihsmSQ *sq;
    uint16_t status, err;
    uint32_t off, n, in_sgl, in_tail;
    uint8_t *out;

    if (!r) {
        trace_azihsm_link_drop(msg_id);
        return;
    }
    sq = azihsm_find_sq(s, r->sqid);
    if (!sq || sq->gen != r->sq_gen) {
        error_report("azihsm: request %u outlived its SQ", msg_id);
        azihsm_req_release(s, r);
        return;
    }
    if (!r->aes || len < LINK_AES_RSP_FIXED || body[0] != LINK_AES_VERSION ||
        (n = ldl_le_p(body + 40)) != len - LINK_AES_RSP_FIXED ||
        (status = lduw_le_p(body + 2)) > 0x7ff ||
        (off = ldl_le_p(body + 36)) > r->dst_sgl_len + r->dst_tail_cap ||
        n > r->dst_sgl_len + r->dst_tail_cap - off) {
        warn_report("azihsm: malformed AES_RESPONSE for request %u", msg_id);
        azihsm_req_fail(s, r, ST_BACKEND_PROTOCOL);
        return;
    }
    out = body + LINK_AES_RSP_FIXED;
    err = lduw_le_p(body + 4);
    if (status || err) {
        azihsm_aes_complete(s, sq, r->attr, r->cid, status, err, NULL, NULL,
                            0, 0, 0);
        azihsm_req_release(s, r);
        return;
    }
    in_sgl = off < r->dst_sgl_len ? MIN(n, r->dst_sgl_len - off) : 0;
    in_tail = n - in_sgl;
    if (azihsm_sgl_rw(s, r->dst_segs, off, out, in_sgl,
                      DMA_DIRECTION_FROM_DEVICE) ||
        (in_tail && pci_dma_write(PCI_DEVICE(s), r->dst_tail_addr +
                                  (off + in_sgl - r->dst_sgl_len),
                                  out + in_sgl, in_tail))) {
        qemu_log_mask(LOG_GUEST_ERROR, "azihsm: AES output DMA failed\n");
        azihsm_req_fail(s, r, ST_DATA_TRANSFER);
        return;
    }
    azihsm_aes_complete(s, sq, r->attr, r->cid, ST_SUCCESS, 0, body + 8,
                        body + 24, in_tail, body[1],
                        MIN(off + n, r->dst_sgl_len));
    azihsm_req_release(s, r);
}

/* ------------------------------------------------------------------------
 * Submission queue processing
 * ------------------------------------------------------------------------ */

/* Fetch and execute new entries of one SQ until it is empty or must wait. */
static void azihsm_process_sq(AzihsmState *s, AzihsmSQ *sq)
{
    AzihsmQueueKind kind = azihsm_qid_kind(sq->qid);
    const AzihsmQueueFormat *fmt = &azihsm_formats[kind];
    uint8_t sqe[AZIHSM_MAX_SQE];
    uint32_t budget;

    for (budget = sq->size; budget && sq->created && sq->head != sq->tail;
         budget--) {
        AzihsmCQ *cq = azihsm_find_cq(s, sq->cqid);
        uint64_t addr = sq->base + (uint64_t)sq->head * fmt->sqe_size;

        /* Stop while completions pile up or the backend has no credit. */
        if (!cq || cq->held_count >= cq->size) {
            return;
        }
        if (kind != QK_ADMIN && s->link == LINK_UP &&
            s->inflight >= azihsm_credit_limit(s)) {
            return;
        }
        if (kind != QK_ADMIN && azihsm_fetch_paused(s)) {
            return;
        }
        if (pci_dma_read(PCI_DEVICE(s), addr, sqe, fmt->sqe_size)) {
            azihsm_set_fatal(s, "submission queue read failed");
            return;
        }
        sq->head = (sq->head + 1) % sq->size;
        switch (kind) {
        case QK_ADMIN:
            azihsm_admin_submit(s, sq, sqe);
            break;
        case QK_HSM:
            azihsm_hsm_submit(s, sq, sqe);
            break;
        case QK_AES:
            azihsm_aes_submit(s, sq, sqe);
            break;
        }
    }
    if (sq->created && sq->head != sq->tail) {
        azihsm_kick(s);     /* budget used up: continue in a new pass */
    }
}

static void azihsm_process_bh(void *opaque)
{
    AzihsmState *s = opaque;

    if (!azihsm_enabled(s)) {
        return;
    }
    for (int slot = 0; slot < AZIHSM_NUM_SLOTS; slot++) {
        if (s->sq[slot].created) {
            azihsm_process_sq(s, &s->sq[slot]);
        }
    }
}

/*
 * HSM and AES fetching waits while a migration drains the source, and on
 * the destination until the backend has acknowledged the post-migration
 * NSSR (docs/device.md, Migration).  Admin commands never wait.
 */
bool azihsm_fetch_paused(AzihsmState *s)
{
    bool settling = s->lm_reset_wait ||
                    (s->lm_reset_pending &&
                     (s->link == LINK_HANDSHAKE || s->lm_busy));

    return s->draining ||
           (settling &&
            qemu_clock_get_ms(QEMU_CLOCK_REALTIME) < s->lm_deadline_ms);
}

void azihsm_kick(AzihsmState *s)
{
    qemu_bh_schedule(s->process_bh);
}

/*
 * An SQ doorbell fetches its queue at once, in the writing vCPU's thread,
 * and writes the frames it produced before returning: a command does not
 * wait for the main loop to wake up (docs/device.md, Doorbells).
 */
static void azihsm_fetch_now(AzihsmState *s, AzihsmSQ *sq)
{
    s->tx_inline = true;
    azihsm_process_sq(s, sq);
    s->tx_inline = false;
    azihsm_link_push(s);
}

/* ------------------------------------------------------------------------
 * Controller state: enable, resets
 * ------------------------------------------------------------------------ */

static const char *const azihsm_reset_names[] = {
    [RESET_CONTROLLER] = "controller (CC.EN 1->0)",
    [RESET_NSSR] = "NVM subsystem (NSSR)",
    [RESET_FUNCTION] = "function",
};

/* Drop every queue and outstanding request; tell the backend @kind. */
static void azihsm_ctrl_reset(AzihsmState *s, int kind)
{
    trace_azihsm_reset(azihsm_reset_names[kind]);
    azihsm_req_forget_all(s);
    for (int slot = 0; slot < AZIHSM_NUM_SLOTS; slot++) {
        if (s->cq[slot].created) {
            azihsm_cq_drop_held(&s->cq[slot]);
        }
        s->sq[slot].created = false;
        s->cq[slot].created = false;
    }
    s->fatal = false;
    s->ready = false;
    timer_del(&s->ready_timer);
    s->cc &= ~AZIHSM_CC_EN;
    if (kind != RESET_CONTROLLER) {
        s->cc = 0;
        s->aqa = 0;
        s->asq = 0;
        s->acq = 0;
    }
    s->nssro = kind == RESET_NSSR;
    if (kind == RESET_FUNCTION) {
        s->res_cnt = s->res_cnt_default;
    }
    azihsm_link_send_reset(s, kind);
}

/* CC.EN 0->1: set up the admin queue pair from AQA/ASQ/ACQ. */
static void azihsm_ctrl_enable(AzihsmState *s)
{
    uint32_t sq_size = (s->aqa & 0xffff) + 1;
    uint32_t cq_size = (s->aqa >> 16) + 1;

    trace_azihsm_enable(s->aqa, s->asq, s->acq);
    if (sq_size < 2 || sq_size > AZIHSM_MAX_QSIZE ||
        cq_size < 2 || cq_size > AZIHSM_MAX_QSIZE) {
        azihsm_set_fatal(s, "admin queue size invalid");
        return;
    }
    if (!azihsm_prp_ok(s, s->asq, sq_size * 64) ||
        !azihsm_prp_ok(s, s->acq, cq_size * 16)) {
        azihsm_set_fatal(s, "admin queue base invalid");
        return;
    }
    s->cq[0] = (AzihsmCQ) {
        .created = true, .qid = 0, .base = s->acq, .size = cq_size,
        .phase = true, .ien = true, .vector = 0, .sq_refs = 1,
    };
    QSIMPLEQ_INIT(&s->cq[0].held);
    s->sq[0] = (AzihsmSQ) {
        .created = true, .qid = 0, .cqid = 0, .base = s->asq,
        .size = sq_size, .gen = s->sq[0].gen + 1,
    };
}

/*
 * CSTS.RDY rises once the controller can serve or knows it cannot: on a
 * HELLO_ACK (accepted or refused), or ready-timeout-ms after CC.EN with no
 * answer (backend absent), after which HSM commands complete with 0x701.
 */
void azihsm_set_ready(AzihsmState *s)
{
    if (!azihsm_enabled(s) || s->ready) {
        return;
    }
    timer_del(&s->ready_timer);
    s->ready = true;
    trace_azihsm_ready(azihsm_link_state_name(s),
                       qemu_clock_get_ms(QEMU_CLOCK_VIRTUAL) - s->enable_ms);
}

static void azihsm_ready_timeout(void *opaque)
{
    azihsm_set_ready(opaque);
}

/* CC.EN 0->1: ready now if the link has settled or enable failed. */
static void azihsm_ready_arm(AzihsmState *s)
{
    s->enable_ms = qemu_clock_get_ms(QEMU_CLOCK_VIRTUAL);
    if (s->link == LINK_UP || s->link == LINK_REFUSED || s->fatal ||
        !s->ready_timeout_ms) {
        azihsm_set_ready(s);
    } else {
        timer_mod(&s->ready_timer, s->enable_ms + s->ready_timeout_ms);
    }
}

static void azihsm_write_cc(AzihsmState *s, uint32_t val)
{
    bool was = azihsm_enabled(s);
    bool now = val & AZIHSM_CC_EN;

    if (was && now) {
        /* Only the vendor entry-size fields change while enabled. */
        s->cc = (s->cc & ~AZIHSM_CC_ENTRY_SIZES) |
                (val & AZIHSM_CC_ENTRY_SIZES);
        return;
    }
    s->cc = val;
    if (!was && now) {
        s->nssro = false;
        azihsm_ctrl_enable(s);
        azihsm_ready_arm(s);
    } else if (was && !now) {
        azihsm_ctrl_reset(s, RESET_CONTROLLER);
        s->cc = val;
    }
}

static uint32_t azihsm_csts(AzihsmState *s)
{
    return (s->ready ? AZIHSM_CSTS_RDY : 0) |
           (s->fatal || s->rot_failed ? AZIHSM_CSTS_CFS : 0) |
           (s->nssro ? AZIHSM_CSTS_NSSRO : 0);
}

/* ------------------------------------------------------------------------
 * BAR0: controller registers
 * ------------------------------------------------------------------------ */

static uint32_t azihsm_reg_read32(AzihsmState *s, hwaddr off)
{
    switch (off) {
    case REG_CAP:
        return (uint32_t)AZIHSM_CAP_VALUE;
    case REG_CAP + 4:
        return AZIHSM_CAP_VALUE >> 32;
    case REG_VS:
        return AZIHSM_VERSION;
    case REG_CC:
        return s->cc;
    case REG_CSTS:
        return azihsm_csts(s);
    case REG_AQA:
        return s->aqa;
    case REG_ASQ:
        return s->asq;
    case REG_ASQ + 4:
        return s->asq >> 32;
    case REG_ACQ:
        return s->acq;
    case REG_ACQ + 4:
        return s->acq >> 32;
    default:
        return 0;       /* NSSR and reserved space read as zero */
    }
}

static uint64_t azihsm_bar0_read(void *opaque, hwaddr off, unsigned size)
{
    AzihsmState *s = opaque;
    uint64_t val = azihsm_reg_read32(s, off);

    if (size == 8) {
        val |= (uint64_t)azihsm_reg_read32(s, off + 4) << 32;
    }
    trace_azihsm_mmio_read(off, val, size);
    return val;
}

static void azihsm_reg_write32(AzihsmState *s, hwaddr off, uint32_t val)
{
    switch (off) {
    case REG_CC:
        azihsm_write_cc(s, val);
        break;
    case REG_NSSR:
        if (val == AZIHSM_NSSR_MAGIC) {
            azihsm_ctrl_reset(s, RESET_NSSR);
        } else {
            qemu_log_mask(LOG_GUEST_ERROR, "azihsm: NSSR write 0x%x is not "
                          "the reset signature\n", val);
        }
        break;
    case REG_AQA:
        s->aqa = val;
        break;
    case REG_ASQ:
        s->asq = deposit64(s->asq, 0, 32, val);
        break;
    case REG_ASQ + 4:
        s->asq = deposit64(s->asq, 32, 32, val);
        break;
    case REG_ACQ:
        s->acq = deposit64(s->acq, 0, 32, val);
        break;
    case REG_ACQ + 4:
        s->acq = deposit64(s->acq, 32, 32, val);
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "azihsm: write 0x%x to read-only or "
                      "reserved register 0x%" HWADDR_PRIx "\n", val, off);
        break;
    }
}

static void azihsm_bar0_write(void *opaque, hwaddr off, uint64_t val,
                              unsigned size)
{
    AzihsmState *s = opaque;

    trace_azihsm_mmio_write(off, val, size);
    azihsm_reg_write32(s, off, val);
    if (size == 8) {
        azihsm_reg_write32(s, off + 4, val >> 32);
    }
}

static const MemoryRegionOps azihsm_bar0_ops = {
    .read = azihsm_bar0_read,
    .write = azihsm_bar0_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 4, .max_access_size = 8 },
    .impl = { .min_access_size = 4, .max_access_size = 8 },
};

/* ------------------------------------------------------------------------
 * BAR2: doorbells
 * ------------------------------------------------------------------------ */

static uint64_t azihsm_bar2_read(void *opaque, hwaddr off, unsigned size)
{
    return 0;
}

static void azihsm_bar2_write(void *opaque, hwaddr off, uint64_t val,
                              unsigned size)
{
    AzihsmState *s = opaque;
    uint16_t qid = off / 8;
    bool is_cq = off & 4;

    if (!azihsm_enabled(s)) {
        qemu_log_mask(LOG_GUEST_ERROR, "azihsm: doorbell 0x%" HWADDR_PRIx
                      " written while disabled\n", off);
        return;
    }
    if (is_cq) {
        AzihsmCQ *cq = azihsm_find_cq(s, qid);

        trace_azihsm_doorbell_cq(qid, val);
        if (!cq) {
            azihsm_set_fatal(s, "CQ doorbell for a queue that does not exist");
        } else if (val >= cq->size) {
            azihsm_set_fatal(s, "CQ head doorbell beyond the queue size");
        } else {
            bool fetch_waits = cq->held_count >= cq->size;

            cq->head = val;
            azihsm_cq_post(s, cq);
            if (fetch_waits) {
                azihsm_kick(s);     /* fetching waited for CQ room */
            }
        }
    } else {
        AzihsmSQ *sq = azihsm_find_sq(s, qid);

        trace_azihsm_doorbell_sq(qid, val);
        if (!sq) {
            azihsm_set_fatal(s, "SQ doorbell for a queue that does not exist");
        } else if (val >= sq->size) {
            azihsm_set_fatal(s, "SQ tail doorbell beyond the queue size");
        } else {
            sq->tail = val;
            azihsm_fetch_now(s, sq);
        }
    }
}

static const MemoryRegionOps azihsm_bar2_ops = {
    .read = azihsm_bar2_read,
    .write = azihsm_bar2_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 4, .max_access_size = 4 },
    .impl = { .min_access_size = 4, .max_access_size = 4 },
};

/* ------------------------------------------------------------------------
 * QOM introspection properties
 * ------------------------------------------------------------------------ */

static char *azihsm_get_link_state(Object *obj, Error **errp)
{
    return g_strdup(azihsm_link_state_name(AZIHSM(obj)));
}

static char *azihsm_get_lm_ctx_state(Object *obj, Error **errp)
{
    const char *state = AZIHSM(obj)->lm_ctx_state;

    return g_strdup(state ? state : "none");
}

/* Commands of @sq waiting for the backend. */
static uint32_t azihsm_sq_inflight(AzihsmState *s, AzihsmSQ *sq)
{
    uint32_t n = 0;

    for (int i = 0; i < LINK_MAX_INFLIGHT; i++) {
        n += azihsm_req_of_sq(&s->req[i], sq);
    }
    return n;
}

/*
 * The "queues" property: a list of one object per existing queue, each CQ
 * before the SQ of the same slot, in slot order (admin, HSM, AES).  Every
 * field is documented in docs/device.md (Properties); qom-get returns it
 * as JSON.
 */
static bool azihsm_visit_ring(Visitor *v, const char *kind, uint16_t qid,
                              uint64_t base, uint32_t size, uint32_t head,
                              uint32_t tail, Error **errp)
{
    char *kind_str = (char *)kind;
    char *format = (char *)azihsm_formats[azihsm_qid_kind(qid)].name;

    return visit_type_str(v, "kind", &kind_str, errp) &&
           visit_type_uint16(v, "qid", &qid, errp) &&
           visit_type_str(v, "format", &format, errp) &&
           visit_type_uint64(v, "base", &base, errp) &&
           visit_type_uint32(v, "size", &size, errp) &&
           visit_type_uint32(v, "head", &head, errp) &&
           visit_type_uint32(v, "tail", &tail, errp);
}

static bool azihsm_visit_cq(Visitor *v, AzihsmCQ *cq, Error **errp)
{
    uint8_t phase = cq->phase;
    bool ok;

    if (!visit_start_struct(v, NULL, NULL, 0, errp)) {
        return false;
    }
    ok = azihsm_visit_ring(v, "cq", cq->qid, cq->base, cq->size, cq->head,
                           cq->tail, errp) &&
         visit_type_uint8(v, "phase", &phase, errp) &&
         visit_type_bool(v, "ien", &cq->ien, errp) &&
         visit_type_uint16(v, "vector", &cq->vector, errp) &&
         visit_type_uint32(v, "held", &cq->held_count, errp) &&
         visit_check_struct(v, errp);
    visit_end_struct(v, NULL);
    return ok;
}

static bool azihsm_visit_sq(AzihsmState *s, Visitor *v, AzihsmSQ *sq,
                            Error **errp)
{
    uint32_t inflight = azihsm_sq_inflight(s, sq);
    bool ok;

    if (!visit_start_struct(v, NULL, NULL, 0, errp)) {
        return false;
    }
    ok = azihsm_visit_ring(v, "sq", sq->qid, sq->base, sq->size, sq->head,
                           sq->tail, errp) &&
         visit_type_uint16(v, "cqid", &sq->cqid, errp) &&
         visit_type_uint32(v, "inflight", &inflight, errp) &&
         visit_check_struct(v, errp);
    visit_end_struct(v, NULL);
    return ok;
}

static void azihsm_get_queues(Object *obj, Visitor *v, const char *name,
                              void *opaque, Error **errp)
{
    AzihsmState *s = AZIHSM(obj);
    bool ok = true;

    if (!visit_start_list(v, name, NULL, 0, errp)) {
        return;
    }
    for (int slot = 0; slot < AZIHSM_NUM_SLOTS && ok; slot++) {
        AzihsmCQ *cq = &s->cq[slot];
        AzihsmSQ *sq = &s->sq[slot];

        ok = (!cq->created || azihsm_visit_cq(v, cq, errp)) &&
             (!sq->created || azihsm_visit_sq(s, v, sq, errp));
    }
    if (ok) {
        visit_check_list(v, errp);
    }
    visit_end_list(v, NULL);
}

static void azihsm_instance_init(Object *obj)
{
    AzihsmState *s = AZIHSM(obj);

    object_property_add_str(obj, "link-state", azihsm_get_link_state, NULL);
    object_property_add(obj, "queues", "AzihsmQueueList", azihsm_get_queues,
                        NULL, NULL, NULL);
    object_property_add_uint64_ptr(obj, "commands-completed",
                                   &s->commands_completed, OBJ_PROP_FLAG_READ);
    object_property_add_uint64_ptr(obj, "commands-failed",
                                   &s->commands_failed, OBJ_PROP_FLAG_READ);
    object_property_add_uint32_ptr(obj, "inflight", &s->inflight,
                                   OBJ_PROP_FLAG_READ);
    object_property_add_uint32_ptr(obj, "migration-resets", &s->lm_resets,
                                   OBJ_PROP_FLAG_READ);
    object_property_add_str(obj, "migration-context",
                            azihsm_get_lm_ctx_state, NULL);
    object_property_add_uint32_ptr(obj, "migration-context-status",
                                   &s->lm_ctx_status, OBJ_PROP_FLAG_READ);
}

/* ------------------------------------------------------------------------
 * Migration (docs/device.md, Migration)
 *
 * Source: when a migration starts, HSM and AES fetching stops (doorbells
 * still land, the SQEs wait in guest memory) and the requests already at
 * the backend drain while the VM runs, for at most migrate-drain-ms
 * (dev_unplug_pending holds the migration in its setup phase meanwhile).
 * Whatever is still outstanding when the state is saved completes with
 * 0x008 as a held completion that travels in the stream (guest RAM is
 * already sent by then), and a CANCEL tells the backend; its late answer
 * is dropped by msg_id, so nothing completes twice.  A completed
 * migration parks the link: the source lets go of its serial/partition.
 *
 * Destination: the device sends no HELLO before its VM runs; after the
 * load, the first frame on an accepted link is RESET kind 2 (NSSR), and
 * HSM/AES commands wait for its RESET_ACK.  Queues, registers and MSI-X
 * continue as they were; CSTS.NSSRO reports the subsystem reset.
 * ------------------------------------------------------------------------ */

#define AZIHSM_VMSTATE_VERSION  1

static const VMStateDescription azihsm_vmstate_sq = {
    .name = "azihsm/sq",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_BOOL(created, AzihsmSQ),
        VMSTATE_UINT16(qid, AzihsmSQ),
        VMSTATE_UINT16(cqid, AzihsmSQ),
        VMSTATE_UINT64(base, AzihsmSQ),
        VMSTATE_UINT32(size, AzihsmSQ),
        VMSTATE_UINT32(head, AzihsmSQ),
        VMSTATE_UINT32(tail, AzihsmSQ),
        VMSTATE_UINT32(gen, AzihsmSQ),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription azihsm_vmstate_cq = {
    .name = "azihsm/cq",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_BOOL(created, AzihsmCQ),
        VMSTATE_UINT16(qid, AzihsmCQ),
        VMSTATE_UINT64(base, AzihsmCQ),
        VMSTATE_UINT32(size, AzihsmCQ),
        VMSTATE_UINT32(head, AzihsmCQ),
        VMSTATE_UINT32(tail, AzihsmCQ),
        VMSTATE_BOOL(phase, AzihsmCQ),
        VMSTATE_BOOL(ien, AzihsmCQ),
        VMSTATE_UINT16(vector, AzihsmCQ),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription azihsm_vmstate_held = {
    .name = "azihsm/held",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT16(cqid, AzihsmHeldMig),
        VMSTATE_UINT16(sqid, AzihsmHeldMig),
        VMSTATE_UINT32(sq_gen, AzihsmHeldMig),
        VMSTATE_UINT16(sqhd, AzihsmHeldMig),
        VMSTATE_UINT16(status, AzihsmHeldMig),
        VMSTATE_UINT8_ARRAY(cqe, AzihsmHeldMig, AZIHSM_MAX_CQE),
        VMSTATE_END_OF_LIST()
    },
};

static bool azihsm_requests_draining(AzihsmState *s)
{
    return s->draining && s->inflight > 0 &&
           qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - s->drain_start_ms <
           s->migrate_drain_ms;
}

/*
 * Source, setup phase: hold the migration while requests drain and then
 * while the backend's migration context is on its way.  QEMU polls this
 * from the migration thread; the phases advance in the main loop.
 */
static bool azihsm_drain_pending(void *opaque)
{
    AzihsmState *s = opaque;

    return azihsm_requests_draining(s) ||
           qatomic_read(&s->lm_ctx_phase) != LM_CTX_IDLE;
}

/* ------------------------------------------------------------------------
 * The partition's migration context (docs/device.md, Migration;
 * docs/link-protocol.md, Migration context).
 *
 * Source: once the requests have drained (or migrate-drain-ms ran out),
 * MIGRATION_CONTEXT_GET asks the backend for the partition's sealed
 * context; the answer (at most backend-timeout-ms later) travels in the
 * subsection azihsm/lm-context.  The wait happens in the setup phase, in
 * the main loop, because pre_save runs where the link cannot be read.
 * Destination: the context goes to the backend right before the
 * post-migration NSSR, and is kept until the backend has answered.
 * Failures on either side mean a migration without context: the guest
 * starts over on another HSM, as with a backend without the extension.
 * ------------------------------------------------------------------------ */

static void azihsm_lm_ctx_clear(AzihsmState *s)
{
    g_clear_pointer(&s->lm_ctx, g_free);
    s->lm_ctx_len = 0;
}

static void azihsm_lm_ctx_give_up(AzihsmState *s, const char *why)
{
    if (s->lm_ctx_phase != LM_CTX_IDLE) {
        warn_report("azihsm: migrating without the partition's migration "
                    "context: %s", why);
    }
    timer_del(&s->lm_ctx_timer);
    qatomic_set(&s->lm_ctx_phase, LM_CTX_IDLE);
    azihsm_lm_ctx_clear(s);
    s->lm_ctx_state = "unavailable";
    trace_azihsm_migrate(why, 0);
}

static void azihsm_lm_ctx_tick(void *opaque)
{
    AzihsmState *s = opaque;
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    uint8_t body[4] = { LINK_LM_VERSION, 0, 0, 0 };

    switch (s->lm_ctx_phase) {
    case LM_CTX_DRAIN:
        if (azihsm_requests_draining(s)) {
            timer_mod(&s->lm_ctx_timer, now + 5);
            return;
        }
        if (s->link != LINK_UP) {
            azihsm_lm_ctx_give_up(s, "the backend link is down");
            return;
        }
        azihsm_link_send(s, MSG_LM_CTX_GET, 0, body, sizeof(body), NULL, 0);
        trace_azihsm_migrate("migration context requested", s->inflight);
        s->lm_ctx_deadline_ms = now + s->backend_timeout_ms;
        qatomic_set(&s->lm_ctx_phase, LM_CTX_WAIT);
        timer_mod(&s->lm_ctx_timer, s->lm_ctx_deadline_ms);
        return;
    case LM_CTX_WAIT:
        if (now >= s->lm_ctx_deadline_ms) {
            azihsm_lm_ctx_give_up(s, "no answer from the backend within "
                                  "backend-timeout-ms");
        } else {
            timer_mod(&s->lm_ctx_timer, s->lm_ctx_deadline_ms);
        }
        return;
    default:
        return;
    }
}

/* Source, MIG_EVENT_PRECOPY_SETUP: ask once the requests have drained. */
static void azihsm_lm_ctx_start(AzihsmState *s)
{
    timer_del(&s->lm_ctx_timer);
    azihsm_lm_ctx_clear(s);
    s->lm_ctx_status = 0;
    if (s->link != LINK_UP || s->backend_minor < LINK_LM_MINOR) {
        /* no link, or a backend without the extension: as before */
        qatomic_set(&s->lm_ctx_phase, LM_CTX_IDLE);
        s->lm_ctx_state = "unavailable";
        trace_azihsm_migrate("no migration context: link down or below 1.2",
                             s->backend_minor);
        return;
    }
    s->lm_ctx_state = "requested";
    qatomic_set(&s->lm_ctx_phase, LM_CTX_DRAIN);
    timer_mod(&s->lm_ctx_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME));
}

/* MIGRATION_CONTEXT: u8 version, u8 0, u16 status, u32 length, context */
void azihsm_lm_ctx_answer(AzihsmState *s, const uint8_t *body, uint32_t len)
{
    uint32_t clen;

    if (s->lm_ctx_phase != LM_CTX_WAIT) {
        trace_azihsm_link_drop(0);
        return;
    }
    if (len < 8 || body[0] != LINK_LM_VERSION ||
        (clen = ldl_le_p(body + 4)) != len - 8 || clen > AZIHSM_LM_CTX_MAX) {
        azihsm_lm_ctx_give_up(s, "malformed MIGRATION_CONTEXT answer");
        return;
    }
    s->lm_ctx_status = lduw_le_p(body + 2);
    if (s->lm_ctx_status || !clen) {
        warn_report("azihsm: the backend gave no migration context (status "
                    "%u): on another HSM the guest starts over",
                    s->lm_ctx_status);
        azihsm_lm_ctx_give_up(s, "the backend refused the context");
        return;
    }
    timer_del(&s->lm_ctx_timer);
    azihsm_lm_ctx_clear(s);
    s->lm_ctx = g_memdup2(body + 8, clen);
    s->lm_ctx_len = clen;
    s->lm_ctx_state = "saved";
    qatomic_set(&s->lm_ctx_phase, LM_CTX_IDLE);
    trace_azihsm_migrate("migration context received", clen);
}

/* Destination, first frame after HELLO_ACK: the context before the NSSR. */
void azihsm_lm_ctx_hand_over(AzihsmState *s)
{
    uint8_t body[8] = { LINK_LM_VERSION, 0, 0, 0 };

    if (!s->lm_ctx_len) {
        return;
    }
    if (s->backend_minor < LINK_LM_MINOR) {
        warn_report("azihsm: the backend speaks link 1.%u, without migration "
                    "contexts: the guest starts over on this HSM",
                    s->backend_minor);
        azihsm_lm_ctx_clear(s);
        s->lm_ctx_state = "unsupported";
        return;
    }
    stl_le_p(body + 4, s->lm_ctx_len);
    azihsm_link_send(s, MSG_LM_CTX_SET, 0, body, sizeof(body), s->lm_ctx,
                     s->lm_ctx_len);
    s->lm_ctx_state = "sent";
    trace_azihsm_migrate("migration context handed over", s->lm_ctx_len);
}

/* MIGRATION_CONTEXT_SET_ACK: u8 version, u8 0, u16 status */
void azihsm_lm_ctx_set_ack(AzihsmState *s, const uint8_t *body, uint32_t len)
{
    if (!s->lm_ctx_len) {
        trace_azihsm_link_drop(0);
        return;
    }
    if (len != 4 || body[0] != LINK_LM_VERSION) {
        warn_report("azihsm: malformed MIGRATION_CONTEXT_SET_ACK: the guest "
                    "starts over on this HSM");
        s->lm_ctx_status = 0xffff;
        s->lm_ctx_state = "refused";
    } else {
        s->lm_ctx_status = lduw_le_p(body + 2);
        s->lm_ctx_state = s->lm_ctx_status ? "refused" : "accepted";
        if (s->lm_ctx_status) {
            warn_report("azihsm: the backend refused the migration context "
                        "(status %u): the guest starts over on this HSM",
                        s->lm_ctx_status);
        }
    }
    trace_azihsm_migrate("migration context answered", s->lm_ctx_status);
    azihsm_lm_ctx_clear(s);
}

/* The connection closed: a GET in progress gets no answer any more. */
void azihsm_lm_ctx_link_lost(AzihsmState *s)
{
    if (s->lm_ctx_phase == LM_CTX_WAIT) {
        azihsm_lm_ctx_give_up(s, "the backend link was lost");
    }
}

static bool azihsm_lm_ctx_needed(void *opaque)
{
    AzihsmState *s = opaque;

    return s->lm_ctx_len > 0;
}

static bool azihsm_lm_ctx_len_ok(void *opaque, int version_id)
{
    AzihsmState *s = opaque;

    if (s->lm_ctx_len == 0 || s->lm_ctx_len > AZIHSM_LM_CTX_MAX) {
        error_report("azihsm: migration stream has a migration context of "
                     "%u bytes (at most %u)", s->lm_ctx_len,
                     AZIHSM_LM_CTX_MAX);
        return false;
    }
    return true;
}

static const VMStateDescription azihsm_vmstate_lm_ctx = {
    .name = "azihsm/lm-context",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = azihsm_lm_ctx_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(lm_ctx_len, AzihsmState),
        VMSTATE_VALIDATE("migration context size", azihsm_lm_ctx_len_ok),
        VMSTATE_VBUFFER_ALLOC_UINT32(lm_ctx, AzihsmState, 1, NULL,
                                     lm_ctx_len),
        VMSTATE_END_OF_LIST()
    },
};

static void azihsm_free_mig_held(AzihsmState *s)
{
    g_clear_pointer(&s->mig_held, g_free);
    s->mig_held_count = 0;
}

static int azihsm_pre_save(void *opaque)
{
    AzihsmState *s = opaque;
    int n = 0;

    if (s->lm_ctx_phase != LM_CTX_IDLE) {
        azihsm_lm_ctx_give_up(s, "the state is saved before the backend "
                              "answered");
    }
    /* What the drain left outstanding completes with 0x008, held. */
    s->hold_posts = true;
    for (int i = 0; i < LINK_MAX_INFLIGHT; i++) {
        if (s->req[i].in_use) {
            uint32_t msg_id = s->req[i].msg_id;

            trace_azihsm_migrate("aborting a request outstanding at save",
                                 msg_id);
            azihsm_req_fail(s, &s->req[i], ST_ABORTED_SQ_DELETED);
            azihsm_link_send_cancel(s, msg_id);
        }
    }
    s->hold_posts = false;

    azihsm_free_mig_held(s);
    for (int slot = 0; slot < AZIHSM_NUM_SLOTS; slot++) {
        if (s->cq[slot].created) {
            n += s->cq[slot].held_count;
        }
    }
    s->mig_held = g_new0(AzihsmHeldMig, MAX(n, 1));
    for (int slot = 0; slot < AZIHSM_NUM_SLOTS; slot++) {
        AzihsmCompletion *c;

        if (!s->cq[slot].created) {
            continue;
        }
        QSIMPLEQ_FOREACH(c, &s->cq[slot].held, next) {
            AzihsmHeldMig *m = &s->mig_held[s->mig_held_count++];

            m->cqid = s->cq[slot].qid;
            m->sqid = c->sqid;
            m->sq_gen = c->sq_gen;
            m->sqhd = c->sqhd;
            m->status = c->status;
            memcpy(m->cqe, c->cqe, sizeof(m->cqe));
        }
    }
    s->mig_res_cnt_default = s->res_cnt_default;
    s->mig_slots = AZIHSM_NUM_SLOTS;
    s->mig_max_inflight = LINK_MAX_INFLIGHT;
    return 0;
}

static int azihsm_post_save(void *opaque)
{
    azihsm_free_mig_held(opaque);
    return 0;
}

/* Incoming state replaces this device's: forget its own requests. */
static int azihsm_pre_load(void *opaque)
{
    AzihsmState *s = opaque;

    for (int i = 0; i < LINK_MAX_INFLIGHT; i++) {
        if (s->req[i].in_use) {
            azihsm_link_send_cancel(s, s->req[i].msg_id);
        }
    }
    azihsm_req_forget_all(s);
    for (int slot = 0; slot < AZIHSM_NUM_SLOTS; slot++) {
        if (s->cq[slot].created) {
            azihsm_cq_drop_held(&s->cq[slot]);
        }
    }
    timer_del(&s->ready_timer);
    azihsm_free_mig_held(s);
    timer_del(&s->lm_ctx_timer);
    qatomic_set(&s->lm_ctx_phase, LM_CTX_IDLE);
    azihsm_lm_ctx_clear(s);
    s->lm_ctx_status = 0;
    s->lm_ctx_state = "none";
    return 0;
}

static bool azihsm_held_count_ok(void *opaque, int version_id)
{
    AzihsmState *s = opaque;

    if (s->mig_held_count < 0 ||
        s->mig_held_count > AZIHSM_NUM_SLOTS * (AZIHSM_MAX_QSIZE + 1)) {
        error_report("azihsm: migration stream holds %d completions",
                     s->mig_held_count);
        return false;
    }
    return true;
}

/* The qid slot @slot holds, or -1 for a slot that cannot exist. */
static int azihsm_slot_qid(int slot)
{
    if (slot == 0) {
        return 0;
    }
    if (slot <= AZIHSM_MAX_HSM_QUEUES) {
        return AZIHSM_HSM_QID_FIRST + slot - 1;
    }
    return AZIHSM_AES_QID_FIRST + slot - 1 - AZIHSM_MAX_HSM_QUEUES;
}

static bool azihsm_ring_ok(uint32_t size, uint32_t head, uint32_t tail)
{
    return size >= 2 && size <= AZIHSM_MAX_QSIZE && head < size &&
           tail < size;
}

/* Check the loaded queues; a refused stream fails the migration. */
static bool azihsm_check_loaded(AzihsmState *s)
{
    if (s->mig_res_cnt_default != s->res_cnt_default) {
        error_report("azihsm: migration stream is from a device with "
                     "res-cnt %u, this one has res-cnt %u: refused",
                     s->mig_res_cnt_default, s->res_cnt_default);
        return false;
    }
    if (s->res_cnt < 1 || s->res_cnt > AZIHSM_MAX_RES_CNT) {
        error_report("azihsm: migration stream has resource count %u",
                     s->res_cnt);
        return false;
    }
    if (s->sq[0].created != s->cq[0].created ||
        (s->sq[0].created && !(s->cc & AZIHSM_CC_EN))) {
        error_report("azihsm: migration stream has an inconsistent "
                     "admin queue");
        return false;
    }
    for (int slot = 0; slot < AZIHSM_NUM_SLOTS; slot++) {
        AzihsmCQ *cq = &s->cq[slot];
        AzihsmSQ *sq = &s->sq[slot];
        AzihsmCQ *target;

        if (cq->created &&
            (cq->qid != azihsm_slot_qid(slot) ||
             !azihsm_ring_ok(cq->size, cq->head, cq->tail) ||
             cq->vector >= AZIHSM_MSIX_VECTORS || !(s->cc & AZIHSM_CC_EN))) {
            error_report("azihsm: migration stream has an invalid CQ "
                         "in slot %d (qid %u)", slot, cq->qid);
            return false;
        }
        if (!sq->created) {
            continue;
        }
        target = azihsm_find_cq(s, sq->cqid);
        if (sq->qid != azihsm_slot_qid(slot) ||
            !azihsm_ring_ok(sq->size, sq->head, sq->tail) ||
            !(s->cc & AZIHSM_CC_EN) || !target ||
            azihsm_qid_kind(sq->cqid) != azihsm_qid_kind(sq->qid) ||
            (sq->qid != 0 && sq->cqid == 0)) {
            error_report("azihsm: migration stream has an invalid SQ "
                         "in slot %d (qid %u, cq %u)", slot, sq->qid,
                         sq->cqid);
            return false;
        }
    }
    for (int i = 0; i < s->mig_held_count; i++) {
        AzihsmHeldMig *m = &s->mig_held[i];
        AzihsmCQ *cq = azihsm_find_cq(s, m->cqid);

        if (!cq || m->status > 0x7ff ||
            azihsm_qid_kind(m->sqid) != azihsm_qid_kind(m->cqid)) {
            error_report("azihsm: migration stream holds a completion "
                         "for missing CQ %u", m->cqid);
            return false;
        }
    }
    return true;
}

/*
 * After a load, HSM/AES commands wait while the link settles (HELLO, the
 * post-migration NSSR and its ack, a source that still holds the
 * partition), for at most backend-timeout-ms of real time.  A backend that
 * is not there at all does not hold them: they complete with 0x701.
 */
static void azihsm_lm_settle_start(AzihsmState *s)
{
    s->lm_deadline_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                        s->backend_timeout_ms;
    timer_mod(&s->lm_timer, s->lm_deadline_ms);
}

static void azihsm_lm_settle_timeout(void *opaque)
{
    AzihsmState *s = opaque;

    if (s->lm_reset_wait || s->lm_busy) {
        warn_report("azihsm: backend link did not settle within %u ms "
                    "after migration", s->backend_timeout_ms);
    }
    s->lm_busy = false;
    azihsm_kick(s);
}

static int azihsm_post_load(void *opaque, int version_id)
{
    AzihsmState *s = opaque;

    if (!azihsm_check_loaded(s)) {
        azihsm_free_mig_held(s);
        return -EINVAL;
    }
    for (int slot = 0; slot < AZIHSM_NUM_SLOTS; slot++) {
        QSIMPLEQ_INIT(&s->cq[slot].held);
        s->cq[slot].held_count = 0;
        s->cq[slot].sq_refs = 0;
    }
    for (int slot = 0; slot < AZIHSM_NUM_SLOTS; slot++) {
        if (s->sq[slot].created) {
            azihsm_find_cq(s, s->sq[slot].cqid)->sq_refs++;
        }
    }
    for (int i = 0; i < s->mig_held_count; i++) {
        AzihsmHeldMig *m = &s->mig_held[i];
        AzihsmCQ *cq = azihsm_find_cq(s, m->cqid);
        AzihsmCompletion *c = g_new0(AzihsmCompletion, 1);

        c->sqid = m->sqid;
        c->sq_gen = m->sq_gen;
        c->sqhd = m->sqhd;
        c->status = m->status;
        memcpy(c->cqe, m->cqe, sizeof(c->cqe));
        QSIMPLEQ_INSERT_TAIL(&cq->held, c, next);
        cq->held_count++;
    }
    azihsm_free_mig_held(s);
    s->inflight = 0;
    s->draining = false;
    s->migrated_out = false;

    /*
     * The guest now runs on another HSM (or on this one, later): what it
     * sees is an NVM subsystem reset of the HSM behind an unchanged
     * controller.  NSSRO says so; the backend gets RESET kind 2 before
     * any command.
     */
    if (s->cc & AZIHSM_CC_EN) {
        s->nssro = true;
    }
    s->lm_reset_wait = false;
    s->lm_reset_pending = true;
    if (s->lm_ctx_len) {
        s->lm_ctx_state = "loaded";
    }
    if (s->link == LINK_UP) {
        /* a snapshot loaded into a running process: the link is live */
        s->lm_reset_pending = false;
        s->lm_reset_wait = true;
        s->lm_resets++;
        azihsm_lm_ctx_hand_over(s);
        trace_azihsm_migrate("post-load NSSR sent", s->lm_resets);
        azihsm_link_send_reset(s, RESET_NSSR);
        azihsm_lm_settle_start(s);
    }
    trace_azihsm_migrate("state loaded", s->res_cnt);
    return 0;
}

static const VMStateDescription azihsm_vmstate = {
    .name = TYPE_AZIHSM,
    .version_id = AZIHSM_VMSTATE_VERSION,
    .minimum_version_id = AZIHSM_VMSTATE_VERSION,
    .pre_save = azihsm_pre_save,
    .post_save = azihsm_post_save,
    .pre_load = azihsm_pre_load,
    .post_load = azihsm_post_load,
    .dev_unplug_pending = azihsm_drain_pending,
    .fields = (const VMStateField[]) {
        VMSTATE_PCI_DEVICE(parent_obj, AzihsmState),
        VMSTATE_MSIX(parent_obj, AzihsmState),
        VMSTATE_UINT32_EQUAL(mig_slots, AzihsmState,
                             "azihsm queue slot count differs"),
        VMSTATE_UINT32_EQUAL(mig_max_inflight, AzihsmState,
                             "azihsm request slot count differs"),
        VMSTATE_UINT32(mig_res_cnt_default, AzihsmState),
        VMSTATE_UINT32(res_cnt, AzihsmState),
        VMSTATE_UINT32(cc, AzihsmState),
        VMSTATE_UINT32(aqa, AzihsmState),
        VMSTATE_UINT64(asq, AzihsmState),
        VMSTATE_UINT64(acq, AzihsmState),
        VMSTATE_BOOL(fatal, AzihsmState),
        VMSTATE_BOOL(nssro, AzihsmState),
        VMSTATE_BOOL(ready, AzihsmState),
        VMSTATE_UINT64(commands_completed, AzihsmState),
        VMSTATE_UINT64(commands_failed, AzihsmState),
        VMSTATE_STRUCT_ARRAY(sq, AzihsmState, AZIHSM_NUM_SLOTS, 1,
                             azihsm_vmstate_sq, AzihsmSQ),
        VMSTATE_STRUCT_ARRAY(cq, AzihsmState, AZIHSM_NUM_SLOTS, 1,
                             azihsm_vmstate_cq, AzihsmCQ),
        VMSTATE_INT32(mig_held_count, AzihsmState),
        VMSTATE_VALIDATE("held completion count", azihsm_held_count_ok),
        VMSTATE_STRUCT_VARRAY_ALLOC(mig_held, AzihsmState, mig_held_count,
                                    1, azihsm_vmstate_held, AzihsmHeldMig),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription * const []) {
        &azihsm_vmstate_lm_ctx,
        NULL
    },
};

/* Migration events at the source (QEMU calls them with the BQL held). */
static int azihsm_migration_notify(NotifierWithReturn *notifier,
                                   MigrationEvent *e, Error **errp)
{
    AzihsmState *s = container_of(notifier, AzihsmState, migration_notifier);

    switch (e->type) {
    case MIG_EVENT_PRECOPY_SETUP:
        s->draining = true;
        s->drain_start_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
        trace_azihsm_migrate("draining", s->inflight);
        azihsm_lm_ctx_start(s);
        break;
    case MIG_EVENT_PRECOPY_DONE:
        /* The guest lives on elsewhere: let go of the backend. */
        s->draining = false;
        s->migrated_out = true;
        azihsm_lm_ctx_clear(s);     /* it lives on in the destination */
        trace_azihsm_migrate("migrated: link parked", 0);
        azihsm_link_park(s);
        break;
    case MIG_EVENT_PRECOPY_FAILED:
        s->draining = false;
        timer_del(&s->lm_ctx_timer);
        qatomic_set(&s->lm_ctx_phase, LM_CTX_IDLE);
        azihsm_lm_ctx_clear(s);
        trace_azihsm_migrate("migration failed: fetching resumes", 0);
        azihsm_kick(s);
        break;
    default:
        break;
    }
    return 0;
}

static void azihsm_vm_state_change(void *opaque, bool running,
                                   RunState state)
{
    AzihsmState *s = opaque;

    if (!running) {
        return;
    }
    s->draining = false;
    if (s->migrated_out) {
        /* `cont` after a completed migration: this HSM was left behind */
        s->migrated_out = false;
        s->lm_reset_pending = true;
    }
    if (s->lm_reset_pending || s->lm_reset_wait) {
        azihsm_lm_settle_start(s);
    }
    if (s->parked) {
        s->parked = false;
        azihsm_link_start_handshake(s);
    }
    if (azihsm_enabled(s)) {
        for (int slot = 0; slot < AZIHSM_NUM_SLOTS; slot++) {
            if (s->cq[slot].created && s->cq[slot].held_count) {
                azihsm_cq_post(s, &s->cq[slot]);
            }
        }
        if (!s->ready && !s->fatal && !timer_pending(&s->ready_timer)) {
            azihsm_ready_arm(s);
        }
    }
    azihsm_kick(s);
}


/* ------------------------------------------------------------------------
 * Device lifecycle
 * ------------------------------------------------------------------------ */

static bool azihsm_check_props(AzihsmState *s, Error **errp)
{
    if (!s->serial) {
        s->serial = g_strdup(AZIHSM_DEFAULT_SERIAL);
    }
    if (!qemu_chr_fe_backend_connected(&s->chr)) {
        error_setg(errp, "azihsm: 'chardev' property is required");
        return false;
    }
    if (strlen(s->serial) == 0 || strlen(s->serial) > LINK_SERIAL_LEN) {
        error_setg(errp, "azihsm: 'serial' must be 1 to %d characters",
                   LINK_SERIAL_LEN);
        return false;
    }
    for (const char *p = s->serial; *p; p++) {
        if (*p < 0x20 || *p > 0x7e) {
            error_setg(errp, "azihsm: 'serial' must be printable ASCII");
            return false;
        }
    }
    if (s->res_cnt_default < 1 || s->res_cnt_default > AZIHSM_MAX_RES_CNT) {
        error_setg(errp, "azihsm: 'res-cnt' must be 1 to %d",
                   AZIHSM_MAX_RES_CNT);
        return false;
    }
    if (s->backend_timeout_ms < 1) {
        error_setg(errp, "azihsm: 'backend-timeout-ms' must be at least 1");
        return false;
    }
    return true;
}

static void azihsm_realize(PCIDevice *pci_dev, Error **errp)
{
    AzihsmState *s = AZIHSM(pci_dev);
    DeviceState *dev = DEVICE(pci_dev);

    if (!azihsm_check_props(s, errp)) {
        return;
    }
    if (!pci_bus_is_express(pci_get_bus(pci_dev))) {
        error_setg(errp, "azihsm: needs a PCI Express bus (e.g. -M q35)");
        return;
    }
    if (pcie_endpoint_cap_init(pci_dev, 0x80) < 0) {
        error_setg(errp, "azihsm: cannot add the PCIe capability");
        return;
    }

    memory_region_init_io(&s->bar0, OBJECT(s), &azihsm_bar0_ops, s,
                          "azihsm-regs", AZIHSM_BAR_SIZE);
    memory_region_init_io(&s->bar2, OBJECT(s), &azihsm_bar2_ops, s,
                          "azihsm-doorbells", AZIHSM_BAR_SIZE);
    memory_region_init(&s->bar4, OBJECT(s), "azihsm-msix", AZIHSM_BAR_SIZE);
    pci_register_bar(pci_dev, 0, PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_TYPE_64, &s->bar0);
    pci_register_bar(pci_dev, 2, PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_TYPE_64, &s->bar2);
    pci_register_bar(pci_dev, 4, PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_TYPE_64, &s->bar4);
    if (msix_init(pci_dev, AZIHSM_MSIX_VECTORS,
                  &s->bar4, 4, AZIHSM_MSIX_TABLE_OFF,
                  &s->bar4, 4, AZIHSM_MSIX_PBA_OFF, 0, errp) < 0) {
        return;
    }
    /* Any vector may be named by Create CQ: all are in use from the start. */
    for (int v = 0; v < AZIHSM_MSIX_VECTORS; v++) {
        msix_vector_use(pci_dev, v);
    }

    s->process_bh = qemu_bh_new_guarded(azihsm_process_bh, s,
                                        &dev->mem_reentrancy_guard);
    for (int i = 0; i < LINK_MAX_INFLIGHT; i++) {
        s->req[i].s = s;
        timer_init_ms(&s->req[i].timer, QEMU_CLOCK_VIRTUAL,
                      azihsm_req_timeout, &s->req[i]);
    }
    timer_init_ms(&s->ready_timer, QEMU_CLOCK_VIRTUAL, azihsm_ready_timeout, s);
    timer_init_ms(&s->lm_ctx_timer, QEMU_CLOCK_REALTIME, azihsm_lm_ctx_tick,
                  s);
    timer_init_ms(&s->lm_timer, QEMU_CLOCK_REALTIME,
                  azihsm_lm_settle_timeout, s);
    s->res_cnt = s->res_cnt_default;
    s->mig_slots = AZIHSM_NUM_SLOTS;
    s->mig_max_inflight = LINK_MAX_INFLIGHT;
    /* An incoming migration's destination waits for its VM to run. */
    s->parked = runstate_check(RUN_STATE_INMIGRATE);
    s->vmstate_change = qemu_add_vm_change_state_handler(
        azihsm_vm_state_change, s);
    migration_add_notifier(&s->migration_notifier, azihsm_migration_notify);
    azihsm_link_realize(s);
}

static void azihsm_exit(PCIDevice *pci_dev)
{
    AzihsmState *s = AZIHSM(pci_dev);

    migration_remove_notifier(&s->migration_notifier);
    qemu_del_vm_change_state_handler(s->vmstate_change);
    azihsm_link_unrealize(s);
    azihsm_req_forget_all(s);
    for (int slot = 0; slot < AZIHSM_NUM_SLOTS; slot++) {
        if (s->cq[slot].created) {
            azihsm_cq_drop_held(&s->cq[slot]);
        }
    }
    for (int i = 0; i < LINK_MAX_INFLIGHT; i++) {
        timer_del(&s->req[i].timer);
    }
    timer_del(&s->ready_timer);
    timer_del(&s->lm_timer);
    timer_del(&s->lm_ctx_timer);
    azihsm_lm_ctx_clear(s);
    qemu_bh_delete(s->process_bh);
    msix_unuse_all_vectors(pci_dev);
    msix_uninit(pci_dev, &s->bar4, &s->bar4);
}

/* QEMU device reset (power-on, system reset): RESET kind 3. */
static void azihsm_qdev_reset(DeviceState *dev)
{
    azihsm_ctrl_reset(AZIHSM(dev), RESET_FUNCTION);
}

static const Property azihsm_props[] = {
    DEFINE_PROP_CHR("chardev", AzihsmState, chr),
    DEFINE_PROP_STRING("serial", AzihsmState, serial),
    DEFINE_PROP_UINT32("partition", AzihsmState, partition, 0),
    DEFINE_PROP_UINT32("res-cnt", AzihsmState, res_cnt_default, 1),
    DEFINE_PROP_UINT32("backend-timeout-ms", AzihsmState,
                       backend_timeout_ms, 2000),
    DEFINE_PROP_UINT32("ready-timeout-ms", AzihsmState,
                       ready_timeout_ms, AZIHSM_READY_TIMEOUT_MS),
    DEFINE_PROP_UINT32("migrate-drain-ms", AzihsmState,
                       migrate_drain_ms, 1000),
};

static void azihsm_class_init(ObjectClass *oc, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(oc);
    PCIDeviceClass *pc = PCI_DEVICE_CLASS(oc);

    pc->realize = azihsm_realize;
    pc->exit = azihsm_exit;
    pc->vendor_id = AZIHSM_VENDOR_ID;
    pc->device_id = AZIHSM_DEVICE_ID;
    pc->subsystem_vendor_id = AZIHSM_VENDOR_ID;
    pc->subsystem_id = AZIHSM_DEVICE_ID;
    pc->class_id = AZIHSM_CLASS;
    pc->revision = 0;

    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    dc->desc = "Azure Integrated HSM (PCIe function 1414:C003)";
    device_class_set_props(dc, azihsm_props);
    dc->vmsd = &azihsm_vmstate;
    device_class_set_legacy_reset(dc, azihsm_qdev_reset);
}

static const TypeInfo azihsm_info = {
    .name = TYPE_AZIHSM,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(AzihsmState),
    .instance_init = azihsm_instance_init,
    .class_init = azihsm_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_PCIE_DEVICE },
        { }
    },
};

static void azihsm_register_types(void)
{
    type_register_static(&azihsm_info);
}

type_init(azihsm_register_types)
