/*
 * Azure Integrated HSM: the serial-bus mailbox (I2C target)
 *
 * The real HSM is reached by platform firmware and the BMC over a serial
 * bus carrying MCTP (DSP0236) in SMBus/I2C framing (DSP0237).  This device
 * is that mailbox as an I2C target at a configurable 7-bit address on any
 * QEMU I2C bus.  Its last layer is a polled register mailbox in the style
 * of the TCG TPM I2C interface (status, burst count, data FIFO), so that a
 * host SMBus controller without target mode (q35's ICH9, Linux i2c-i801)
 * can move whole DSP0237 packets with byte/word data, SMBus block write and
 * I2C block read transactions.
 *
 * The device does no MCTP work: every packet the host commits (CTRL.GO) is
 * forwarded to the backend as one MAILBOX_PACKET frame, and the backend's
 * MAILBOX_ANSWER frames queue packets for the host to read.  Each committed
 * packet gets exactly one answer frame marked END; the device counts those
 * to drive STS.PENDING and its timeout.  Reassembly, MCTP control, SPDM and
 * vendor messages live in the backend (pyhsm/backend/serialbus/).
 *
 * Registers, bits, error codes and timing: docs/serial-mailbox.md.
 * Link frames: docs/link-protocol.md.
 *
 * Usage (q35):
 *   -chardev socket,id=mbx0,path=SOCK,reconnect-ms=500
 *   -device azihsm-i2c,bus=i2c,address=0x41,chardev=mbx0,serial=S
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "qemu/units.h"
#include "qapi/error.h"
#include "hw/i2c/i2c.h"
#include "hw/qdev-properties.h"
#include "hw/qdev-properties-system.h"
#include "chardev/char-fe.h"
#include "migration/vmstate.h"
#include "migration/misc.h"
#include "system/runstate.h"
#include "qom/object.h"
#include "trace.h"

#define TYPE_AZIHSM_I2C "azihsm-i2c"
OBJECT_DECLARE_SIMPLE_TYPE(AzihsmI2CState, AZIHSM_I2C)

#define MBX_DEFAULT_SERIAL      "AZIHSM-0000000000000001"
#define MBX_VENDOR_ID           0x1414
#define MBX_IF_VERSION          1

/* Registers (the SMBus command code selects one). */
enum {
    REG_ID       = 0x00,   /* word, RO: 0x1414 */
    REG_IFVER    = 0x02,   /* byte, RO: interface version */
    REG_STS      = 0x04,   /* byte, RO */
    REG_CTRL     = 0x05,   /* byte, WO */
    REG_BURST    = 0x06,   /* word, RO: bytes left in the current packet */
    REG_ERROR    = 0x07,   /* byte, RO: last error code */
    REG_TX_FIFO  = 0x08,   /* SMBus block write: count, then 1..32 bytes */
    REG_RX_FIFO  = 0x09,   /* I2C block read or byte reads: raw bytes */
    REG_RX_BLOCK = 0x0A,   /* SMBus block read: count, then bytes */
    REG_RX_COUNT = 0x0B,   /* byte, RO: packets waiting (saturates at 255) */
};

#define STS_DATA_AVAIL  0x01
#define STS_PENDING     0x02
#define STS_LINK_UP     0x04
#define STS_ERROR       0x08
#define STS_TX_DATA     0x10

#define CTRL_GO         0x01
#define CTRL_RETRY      0x02
#define CTRL_ABORT      0x04
#define CTRL_CLEAR      0x08

/* Error codes of REG_ERROR made by the device; the backend's are 0x20+. */
enum {
    ERR_NONE = 0x00,
    ERR_BLOCK_COUNT = 0x01,   /* block write count 0, >32 or not matched */
    ERR_REGISTER = 0x02,      /* unknown register or wrong direction */
    ERR_UNDERRUN = 0x03,      /* read past the current packet */
    ERR_TX_OVERFLOW = 0x04,   /* packet longer than MBX_MAX_PACKET */
    ERR_TX_EMPTY = 0x05,      /* GO with nothing in the FIFO */
    ERR_RX_OVERFLOW = 0x06,   /* too many packets queued for the host */
    ERR_LINK_DOWN = 0x07,     /* GO while the backend is not connected */
    ERR_LINK_LOST = 0x08,     /* backend lost with answers outstanding */
    ERR_TIMEOUT = 0x09,       /* no END answer within backend-timeout-ms */
    ERR_BUSY = 0x0A,          /* too many packets outstanding */
};

#define MBX_BLOCK_MAX       32
#define MBX_MAX_PACKET      260     /* DSP0237: addr, cmd, count<=255, PEC */
#define MBX_MAX_RX_PACKETS  512
#define MBX_MAX_OUTSTANDING 64

/* Link (docs/link-protocol.md) */
#define LINK_MAGIC          "AZHL"
#define LINK_VERSION        1
#define LINK_MINOR          0
#define LINK_HDR_SIZE       16
#define LINK_SERIAL_LEN     32
#define LINK_MAX_BODY       (8 + MBX_MAX_PACKET)
#define LINK_OUTBUF_LIMIT   (1 * MiB)
#define LINK_CHANNEL_MAILBOX 1
#define MSG_HELLO           0x01
#define MSG_RESET           0x03
#define MSG_PACKET          0x05
#define MSG_HELLO_ACK       0x81
#define MSG_RESET_ACK       0x83
#define MSG_ANSWER          0x85
#define RESET_FUNCTION      3
#define RESET_MAILBOX       4
#define ANSWER_END          0x01

typedef enum { LINK_DOWN, LINK_HANDSHAKE, LINK_UP, LINK_REFUSED } MbxLink;
static const char *const mbx_link_names[] = {
    "down", "handshake", "up", "refused",
};

struct AzihsmI2CState {
    I2CSlave parent_obj;

    CharBackend chr;
    char *serial;
    uint32_t backend_timeout_ms;

    /* bus layer: one transaction */
    uint8_t reg;            /* register pointer */
    bool in_write;          /* a write transaction is open */
    bool want_reg;          /* its next byte selects the register */
    uint32_t wr_count;      /* data bytes after the register byte */
    uint8_t blk[1 + MBX_BLOCK_MAX];
    bool blk_bad;
    uint32_t rd_off;        /* bytes read from a plain register */
    int32_t rd_block_left;  /* RX_BLOCK: -1 before the count byte */
    bool rx_done_in_txn;    /* the current packet was read to its end */

    /* mailbox */
    uint8_t sts_error;      /* STS_ERROR latched */
    uint8_t error;
    uint8_t tx[MBX_MAX_PACKET];
    uint32_t tx_len;
    bool tx_overflow;
    GQueue rx;              /* GByteArray packets for the host */
    uint32_t rx_pos;        /* read position in the head packet */
    uint32_t outstanding;   /* committed packets without an END answer */
    uint32_t next_msg_id;
    uint32_t accept_from;   /* answers with an older msg_id are stale */
    QEMUTimer timer;
    uint64_t packets_sent;
    uint64_t packets_received;

    /* link */
    MbxLink link;
    GByteArray *txbuf;
    guint tx_watch;
    QEMUBH *link_bh;
    bool rx_broken;
    uint8_t rx_hdr[LINK_HDR_SIZE];
    uint8_t rx_body[LINK_MAX_BODY];
    uint32_t rx_have;
    uint32_t rx_body_len;
    bool rx_in_body;

    /* migration (docs/serial-mailbox.md via docs/device.md, Migration) */
    bool chr_open;
    bool parked;            /* no HELLO: incoming, or migrated away */
    bool after_migration;   /* a busy HELLO_ACK is retried */
    uint32_t mig_rx_len;
    uint8_t *mig_rx;        /* the host's packets: u16 length, bytes */
    VMChangeStateEntry *vmstate_change;
    NotifierWithReturn migration_notifier;
};

static void mbx_protocol_error(AzihsmI2CState *s, const char *why);

/* ------------------------------------------------------------------------
 * Mailbox state
 * ------------------------------------------------------------------------ */

static void mbx_fail(AzihsmI2CState *s, uint8_t code)
{
    s->sts_error = STS_ERROR;
    s->error = code;
    trace_azihsm_i2c_error(code);
}

static void mbx_rx_clear(AzihsmI2CState *s)
{
    GByteArray *p;

    while ((p = g_queue_pop_head(&s->rx))) {
        g_byte_array_free(p, true);
    }
    s->rx_pos = 0;
}

static uint32_t mbx_burst(AzihsmI2CState *s)
{
    GByteArray *p = g_queue_peek_head(&s->rx);

    return p ? p->len - s->rx_pos : 0;
}

static uint8_t mbx_sts(AzihsmI2CState *s)
{
    return (g_queue_is_empty(&s->rx) ? 0 : STS_DATA_AVAIL) |
           (s->outstanding ? STS_PENDING : 0) |
           (s->link == LINK_UP ? STS_LINK_UP : 0) |
           (s->tx_len || s->tx_overflow ? STS_TX_DATA : 0) |
           s->sts_error;
}

/* Forget everything outstanding: later answers to it are dropped. */
static void mbx_forget_outstanding(AzihsmI2CState *s)
{
    s->outstanding = 0;
    s->accept_from = s->next_msg_id;
    timer_del(&s->timer);
}

static void mbx_timeout(void *opaque)
{
    AzihsmI2CState *s = opaque;

    trace_azihsm_i2c_timeout(s->outstanding);
    mbx_forget_outstanding(s);
    mbx_fail(s, ERR_TIMEOUT);
}

static void mbx_arm_timer(AzihsmI2CState *s)
{
    timer_mod(&s->timer, qemu_clock_get_ms(QEMU_CLOCK_VIRTUAL) +
              s->backend_timeout_ms);
}

/* ------------------------------------------------------------------------
 * Backend link: output
 * ------------------------------------------------------------------------ */

static void mbx_link_set(AzihsmI2CState *s, MbxLink state)
{
    s->link = state;
    trace_azihsm_i2c_link_state(mbx_link_names[state]);
}

static void mbx_link_send(AzihsmI2CState *s, uint8_t type, uint32_t msg_id,
                          const void *body, uint32_t body_len)
{
    uint8_t hdr[LINK_HDR_SIZE];

    memcpy(hdr, LINK_MAGIC, 4);
    hdr[4] = LINK_VERSION;
    hdr[5] = type;
    stw_le_p(hdr + 6, 0);
    stl_le_p(hdr + 8, msg_id);
    stl_le_p(hdr + 12, body_len);
    g_byte_array_append(s->txbuf, hdr, sizeof(hdr));
    g_byte_array_append(s->txbuf, body, body_len);
    trace_azihsm_i2c_link_tx(type, msg_id, body_len);
    if (s->txbuf->len > LINK_OUTBUF_LIMIT) {
        mbx_protocol_error(s, "backend does not read its socket");
        return;
    }
    qemu_bh_schedule(s->link_bh);
}

static void mbx_link_send_hello(AzihsmI2CState *s)
{
    uint8_t body[8 + LINK_SERIAL_LEN + 4] = { 0 };

    stw_le_p(body + 0, LINK_VERSION);
    stw_le_p(body + 2, LINK_MINOR);
    stw_le_p(body + 4, MBX_MAX_OUTSTANDING);
    stw_le_p(body + 6, LINK_CHANNEL_MAILBOX);
    memcpy(body + 8, s->serial, strlen(s->serial));
    mbx_link_send(s, MSG_HELLO, 0, body, sizeof(body));
}

static void mbx_link_send_reset(AzihsmI2CState *s, uint32_t kind)
{
    uint8_t body[4];

    if (s->link == LINK_UP) {
        stl_le_p(body, kind);
        mbx_link_send(s, MSG_RESET, 0, body, sizeof(body));
    }
}

static gboolean mbx_link_writable(void *do_not_use, GIOCondition cond,
                                  void *opaque);

static void mbx_link_flush(AzihsmI2CState *s)
{
    int n;

    if (!s->txbuf->len || s->tx_watch) {
        return;
    }
    n = qemu_chr_fe_write(&s->chr, s->txbuf->data, s->txbuf->len);
    if (n < 0 && errno != EAGAIN) {
        return;     /* the chardev reports the loss with CHR_EVENT_CLOSED */
    }
    if (n > 0) {
        g_byte_array_remove_range(s->txbuf, 0, n);
    }
    if (s->txbuf->len) {
        s->tx_watch = qemu_chr_fe_add_watch(&s->chr, G_IO_OUT | G_IO_HUP,
                                            mbx_link_writable, s);
        if (!s->tx_watch) {
            mbx_protocol_error(s, "chardev cannot wait for output");
        }
    }
}

static gboolean mbx_link_writable(void *do_not_use, GIOCondition cond,
                                  void *opaque)
{
    AzihsmI2CState *s = opaque;

    s->tx_watch = 0;
    mbx_link_flush(s);
    return G_SOURCE_REMOVE;
}

static void mbx_link_bh(void *opaque)
{
    AzihsmI2CState *s = opaque;

    if (s->rx_broken) {
        s->rx_broken = false;
        qemu_chr_fe_disconnect(&s->chr);
        return;
    }
    mbx_link_flush(s);
}

static void mbx_link_clear_io(AzihsmI2CState *s)
{
    if (s->tx_watch) {
        g_source_remove(s->tx_watch);
        s->tx_watch = 0;
    }
    g_byte_array_set_size(s->txbuf, 0);
    s->rx_have = 0;
    s->rx_body_len = 0;
    s->rx_in_body = false;
}

/* The link is gone: outstanding answers will never come. */
static void mbx_link_lost(AzihsmI2CState *s)
{
    if (s->outstanding) {
        mbx_forget_outstanding(s);
        mbx_fail(s, ERR_LINK_LOST);
    }
    mbx_link_clear_io(s);
}

static void mbx_protocol_error(AzihsmI2CState *s, const char *why)
{
    warn_report("azihsm-i2c: backend link protocol error (%s); "
                "disconnecting", why);
    trace_azihsm_i2c_link_error(why);
    mbx_link_set(s, LINK_DOWN);
    mbx_link_lost(s);
    s->rx_broken = true;
    qemu_bh_schedule(s->link_bh);
}

/* ------------------------------------------------------------------------
 * Packets
 * ------------------------------------------------------------------------ */

/* CTRL.GO: the FIFO becomes one packet for the backend. */
static void mbx_go(AzihsmI2CState *s)
{
    uint8_t body[8 + MBX_MAX_PACKET];
    uint32_t len = s->tx_len;
    bool overflow = s->tx_overflow;

    s->tx_len = 0;
    s->tx_overflow = false;
    if (overflow) {
        mbx_fail(s, ERR_TX_OVERFLOW);
    } else if (!len) {
        mbx_fail(s, ERR_TX_EMPTY);
    } else if (s->link != LINK_UP) {
        mbx_fail(s, ERR_LINK_DOWN);
    } else if (s->outstanding >= MBX_MAX_OUTSTANDING) {
        mbx_fail(s, ERR_BUSY);
    } else {
        body[0] = I2C_SLAVE(s)->address;
        body[1] = body[2] = body[3] = 0;
        stl_le_p(body + 4, len);
        memcpy(body + 8, s->tx, len);
        trace_azihsm_i2c_go(s->next_msg_id, len);
        mbx_link_send(s, MSG_PACKET, s->next_msg_id++, body, 8 + len);
        s->packets_sent++;
        if (!s->outstanding++) {
            mbx_arm_timer(s);
        }
    }
}

/* Drop everything in flight and queued; tell the backend. */
static void mbx_abort(AzihsmI2CState *s, uint32_t reset_kind)
{
    s->tx_len = 0;
    s->tx_overflow = false;
    mbx_rx_clear(s);
    mbx_forget_outstanding(s);
    s->sts_error = 0;
    s->error = ERR_NONE;
    mbx_link_send_reset(s, reset_kind);
}

static void mbx_ctrl(AzihsmI2CState *s, uint8_t val)
{
    trace_azihsm_i2c_ctrl(val);
    if (val & CTRL_ABORT) {
        mbx_abort(s, RESET_MAILBOX);
        return;
    }
    if (val & CTRL_CLEAR) {
        s->sts_error = 0;
        s->error = ERR_NONE;
    }
    if (val & CTRL_RETRY) {
        s->rx_pos = 0;
    }
    if (val & CTRL_GO) {
        mbx_go(s);
    }
}

static void mbx_answer(AzihsmI2CState *s, uint32_t msg_id,
                       const uint8_t *body, uint32_t len)
{
    uint8_t status, flags;
    uint32_t plen;

    if (len < 8 || ldl_le_p(body + 4) != len - 8) {
        mbx_protocol_error(s, "malformed MAILBOX_ANSWER");
        return;
    }
    status = body[0];
    flags = body[1];
    plen = len - 8;
    trace_azihsm_i2c_answer(msg_id, status, flags, plen);
    if (msg_id < s->accept_from || msg_id >= s->next_msg_id) {
        trace_azihsm_i2c_stale(msg_id);
        return;
    }
    if (plen) {
        if (g_queue_get_length(&s->rx) >= MBX_MAX_RX_PACKETS) {
            mbx_fail(s, ERR_RX_OVERFLOW);
        } else {
            GByteArray *p = g_byte_array_sized_new(plen);

            g_byte_array_append(p, body + 8, plen);
            g_queue_push_tail(&s->rx, p);
            s->packets_received++;
        }
    }
    if (status) {
        mbx_fail(s, status);
    }
    if ((flags & ANSWER_END) && s->outstanding) {
        if (--s->outstanding) {
            mbx_arm_timer(s);
        } else {
            timer_del(&s->timer);
        }
    }
}

/* ------------------------------------------------------------------------
 * Bus layer: the register mailbox
 * ------------------------------------------------------------------------ */

static uint8_t mbx_rx_byte(AzihsmI2CState *s)
{
    GByteArray *p = g_queue_peek_head(&s->rx);

    if (!p || s->rx_pos >= p->len) {
        mbx_fail(s, ERR_UNDERRUN);
        return 0xff;
    }
    if (s->rx_pos + 1 == p->len) {
        s->rx_done_in_txn = true;
    }
    return p->data[s->rx_pos++];
}

/* A packet read to its end is retired when its read transaction ends. */
static void mbx_rx_retire(AzihsmI2CState *s)
{
    GByteArray *p;

    if (!s->rx_done_in_txn) {
        return;
    }
    s->rx_done_in_txn = false;
    p = g_queue_peek_head(&s->rx);
    if (p && s->rx_pos >= p->len) {
        g_byte_array_free(g_queue_pop_head(&s->rx), true);
        s->rx_pos = 0;
    }
}

static uint16_t mbx_reg_value(AzihsmI2CState *s, bool *ok)
{
    *ok = true;
    switch (s->reg) {
    case REG_ID:
        return MBX_VENDOR_ID;
    case REG_IFVER:
        return MBX_IF_VERSION;
    case REG_STS:
        return mbx_sts(s);
    case REG_BURST:
        return MIN(mbx_burst(s), 0xffff);
    case REG_ERROR:
        return s->error;
    case REG_RX_COUNT:
        return MIN(g_queue_get_length(&s->rx), 255);
    default:
        *ok = false;
        return 0xff;
    }
}

static uint8_t mbx_recv(I2CSlave *i2c)
{
    AzihsmI2CState *s = AZIHSM_I2C(i2c);
    uint16_t value;
    bool ok;
    uint8_t byte;

    switch (s->reg) {
    case REG_RX_FIFO:
        return mbx_rx_byte(s);
    case REG_RX_BLOCK:
        if (s->rd_block_left < 0) {
            s->rd_block_left = MIN(mbx_burst(s), MBX_BLOCK_MAX);
            return s->rd_block_left;
        }
        if (s->rd_block_left == 0) {
            mbx_fail(s, ERR_UNDERRUN);
            return 0xff;
        }
        s->rd_block_left--;
        return mbx_rx_byte(s);
    }
    value = mbx_reg_value(s, &ok);
    if (!ok) {
        if (s->rd_off++ == 0) {
            mbx_fail(s, ERR_REGISTER);
        }
        return 0xff;
    }
    byte = s->rd_off < 2 ? value >> (8 * s->rd_off) : 0;
    s->rd_off++;
    return byte;
}

static int mbx_send(I2CSlave *i2c, uint8_t data)
{
    AzihsmI2CState *s = AZIHSM_I2C(i2c);

    if (s->want_reg) {
        s->want_reg = false;
        s->reg = data;
        trace_azihsm_i2c_reg(data);
        return 0;
    }
    switch (s->reg) {
    case REG_TX_FIFO:
        if (s->wr_count < sizeof(s->blk)) {
            s->blk[s->wr_count] = data;
        } else {
            s->blk_bad = true;
        }
        break;
    case REG_CTRL:
        if (s->wr_count == 0) {
            mbx_ctrl(s, data);
        } else {
            mbx_fail(s, ERR_REGISTER);
        }
        break;
    default:
        if (s->wr_count == 0) {
            mbx_fail(s, ERR_REGISTER);
        }
        break;
    }
    s->wr_count++;
    return 0;
}

/* End of a write to TX_FIFO: the block must be exactly "count" bytes. */
static void mbx_tx_block_done(AzihsmI2CState *s)
{
    uint8_t count = s->blk[0];

    if (s->blk_bad || count == 0 || count > MBX_BLOCK_MAX ||
        s->wr_count != 1u + count) {
        mbx_fail(s, ERR_BLOCK_COUNT);
        return;
    }
    if (s->tx_len + count > MBX_MAX_PACKET) {
        s->tx_overflow = true;
        return;
    }
    memcpy(s->tx + s->tx_len, s->blk + 1, count);
    s->tx_len += count;
}

static void mbx_write_done(AzihsmI2CState *s)
{
    if (s->in_write && s->reg == REG_TX_FIFO && s->wr_count) {
        mbx_tx_block_done(s);
    }
    s->in_write = false;
}

static int mbx_event(I2CSlave *i2c, enum i2c_event event)
{
    AzihsmI2CState *s = AZIHSM_I2C(i2c);

    trace_azihsm_i2c_event(event);
    switch (event) {
    case I2C_START_SEND:
    case I2C_START_SEND_ASYNC:
        mbx_write_done(s);
        mbx_rx_retire(s);
        s->in_write = true;
        s->want_reg = true;
        s->wr_count = 0;
        s->blk_bad = false;
        break;
    case I2C_START_RECV:
        /* a repeated start ends the register-select write */
        mbx_write_done(s);
        s->rd_off = 0;
        s->rd_block_left = -1;
        break;
    case I2C_FINISH:
        mbx_write_done(s);
        mbx_rx_retire(s);
        break;
    case I2C_NACK:
        break;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Backend link: input
 * ------------------------------------------------------------------------ */

static void mbx_hello_ack(AzihsmI2CState *s, const uint8_t *body, uint32_t len)
{
    uint16_t major, result;

    if (s->link != LINK_HANDSHAKE || len != 8) {
        mbx_protocol_error(s, "unexpected or malformed HELLO_ACK");
        return;
    }
    major = lduw_le_p(body);
    result = lduw_le_p(body + 6);
    if (result == 0 && major == LINK_VERSION) {
        mbx_link_set(s, LINK_UP);
        s->after_migration = false;
        return;
    }
    if (result == 2 && s->after_migration) {
        /* the migration source still holds this serial: try again */
        mbx_link_set(s, LINK_DOWN);
        s->rx_broken = true;
        qemu_bh_schedule(s->link_bh);
        return;
    }
    warn_report("azihsm-i2c: backend refused serial '%s' (result %u)",
                s->serial, result);
    mbx_link_set(s, LINK_REFUSED);
}

static void mbx_dispatch(AzihsmI2CState *s)
{
    uint8_t type = s->rx_hdr[5];
    uint32_t msg_id = ldl_le_p(s->rx_hdr + 8);

    trace_azihsm_i2c_link_rx(type, msg_id, s->rx_body_len);
    switch (type) {
    case MSG_HELLO_ACK:
        mbx_hello_ack(s, s->rx_body, s->rx_body_len);
        break;
    case MSG_ANSWER:
        if (s->link != LINK_UP) {
            mbx_protocol_error(s, "MAILBOX_ANSWER before HELLO_ACK");
        } else {
            mbx_answer(s, msg_id, s->rx_body, s->rx_body_len);
        }
        break;
    case MSG_RESET_ACK:
        if (s->rx_body_len != 4) {
            mbx_protocol_error(s, "malformed RESET_ACK");
        }
        break;
    }
}

static bool mbx_check_header(AzihsmI2CState *s)
{
    const uint8_t *h = s->rx_hdr;
    uint8_t type = h[5];

    if (memcmp(h, LINK_MAGIC, 4)) {
        mbx_protocol_error(s, "bad frame magic");
    } else if (h[4] != LINK_VERSION) {
        mbx_protocol_error(s, "unsupported frame version");
    } else if (lduw_le_p(h + 6)) {
        mbx_protocol_error(s, "nonzero frame flags");
    } else if (type != MSG_HELLO_ACK && type != MSG_ANSWER &&
               type != MSG_RESET_ACK) {
        mbx_protocol_error(s, "unknown or misdirected frame type");
    } else if (ldl_le_p(h + 12) > LINK_MAX_BODY) {
        mbx_protocol_error(s, "frame body too long");
    } else {
        s->rx_body_len = ldl_le_p(h + 12);
        return true;
    }
    return false;
}

static int mbx_can_read(void *opaque)
{
    AzihsmI2CState *s = opaque;

    if (s->rx_broken) {
        return 0;
    }
    return s->rx_in_body ? s->rx_body_len - s->rx_have
                         : LINK_HDR_SIZE - s->rx_have;
}

static void mbx_read(void *opaque, const uint8_t *buf, int size)
{
    AzihsmI2CState *s = opaque;

    while (size > 0 && !s->rx_broken) {
        uint32_t want = s->rx_in_body ? s->rx_body_len - s->rx_have
                                      : LINK_HDR_SIZE - s->rx_have;
        uint32_t n = MIN(want, (uint32_t)size);

        memcpy((s->rx_in_body ? s->rx_body : s->rx_hdr) + s->rx_have, buf, n);
        s->rx_have += n;
        buf += n;
        size -= n;
        if (s->rx_have < (s->rx_in_body ? s->rx_body_len : LINK_HDR_SIZE)) {
            continue;
        }
        s->rx_have = 0;
        if (!s->rx_in_body) {
            if (!mbx_check_header(s)) {
                return;
            }
            s->rx_in_body = s->rx_body_len > 0;
            if (s->rx_in_body) {
                continue;
            }
        }
        s->rx_in_body = false;
        mbx_dispatch(s);
    }
}

static void mbx_chr_event(void *opaque, QEMUChrEvent event)
{
    AzihsmI2CState *s = opaque;

    switch (event) {
    case CHR_EVENT_OPENED:
        trace_azihsm_i2c_link_event("opened");
        s->chr_open = true;
        mbx_link_lost(s);
        s->rx_broken = false;
        mbx_link_set(s, LINK_DOWN);
        if (!s->parked) {
            mbx_link_set(s, LINK_HANDSHAKE);
            mbx_link_send_hello(s);
        }
        break;
    case CHR_EVENT_CLOSED:
        trace_azihsm_i2c_link_event("closed");
        s->chr_open = false;
        mbx_link_set(s, LINK_DOWN);
        mbx_link_lost(s);
        s->rx_broken = false;
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------
 * Migration: registers, FIFOs and the host's queued packets travel; an
 * exchange still waiting for the backend cannot (the destination has a
 * new link), so it ends with ERR_LINK_LOST, as a lost backend does.
 * ------------------------------------------------------------------------ */

static int mbx_pre_save(void *opaque)
{
    AzihsmI2CState *s = opaque;
    GByteArray *flat = g_byte_array_new();

    for (GList *l = s->rx.head; l; l = l->next) {
        GByteArray *p = l->data;
        uint8_t len[2];

        stw_le_p(len, p->len);
        g_byte_array_append(flat, len, 2);
        g_byte_array_append(flat, p->data, p->len);
    }
    g_free(s->mig_rx);
    s->mig_rx_len = flat->len;
    s->mig_rx = g_byte_array_free(flat, false);
    return 0;
}

static int mbx_post_save(void *opaque)
{
    AzihsmI2CState *s = opaque;

    g_clear_pointer(&s->mig_rx, g_free);
    s->mig_rx_len = 0;
    return 0;
}

static int mbx_pre_load(void *opaque)
{
    AzihsmI2CState *s = opaque;

    mbx_rx_clear(s);
    mbx_forget_outstanding(s);
    g_clear_pointer(&s->mig_rx, g_free);
    s->mig_rx_len = 0;
    return 0;
}

static int mbx_post_load(void *opaque, int version_id)
{
    AzihsmI2CState *s = opaque;
    uint32_t off = 0, packets = 0, outstanding = s->outstanding;
    GByteArray *head = NULL;
    int ret = 0;

    while (off + 2 <= s->mig_rx_len) {
        uint16_t len = lduw_le_p(s->mig_rx + off);
        GByteArray *p;

        if (!len || len > LINK_MAX_BODY || off + 2 + len > s->mig_rx_len ||
            ++packets > MBX_MAX_RX_PACKETS) {
            break;
        }
        p = g_byte_array_sized_new(len);
        g_byte_array_append(p, s->mig_rx + off + 2, len);
        g_queue_push_tail(&s->rx, p);
        head = head ? head : p;
        off += 2 + len;
    }
    if (off != s->mig_rx_len || s->tx_len > MBX_MAX_PACKET ||
        s->rd_block_left < -1 || s->rd_block_left > MBX_BLOCK_MAX ||
        (head ? s->rx_pos > head->len : s->rx_pos != 0)) {
        error_report("azihsm-i2c: migration stream has an invalid mailbox "
                     "state (rx %u/%u bytes, tx %u): refused", off,
                     s->mig_rx_len, s->tx_len);
        mbx_rx_clear(s);
        ret = -EINVAL;
    }
    g_clear_pointer(&s->mig_rx, g_free);
    s->mig_rx_len = 0;
    mbx_forget_outstanding(s);
    if (!ret && outstanding) {
        mbx_fail(s, ERR_LINK_LOST);
    }
    s->after_migration = true;
    return ret;
}

static const VMStateDescription mbx_vmstate = {
    .name = TYPE_AZIHSM_I2C,
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = mbx_pre_save,
    .post_save = mbx_post_save,
    .pre_load = mbx_pre_load,
    .post_load = mbx_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_I2C_SLAVE(parent_obj, AzihsmI2CState),
        VMSTATE_UINT8(reg, AzihsmI2CState),
        VMSTATE_BOOL(in_write, AzihsmI2CState),
        VMSTATE_BOOL(want_reg, AzihsmI2CState),
        VMSTATE_UINT32(wr_count, AzihsmI2CState),
        VMSTATE_UINT8_ARRAY(blk, AzihsmI2CState, 1 + MBX_BLOCK_MAX),
        VMSTATE_BOOL(blk_bad, AzihsmI2CState),
        VMSTATE_UINT32(rd_off, AzihsmI2CState),
        VMSTATE_INT32(rd_block_left, AzihsmI2CState),
        VMSTATE_BOOL(rx_done_in_txn, AzihsmI2CState),
        VMSTATE_UINT8(sts_error, AzihsmI2CState),
        VMSTATE_UINT8(error, AzihsmI2CState),
        VMSTATE_UINT8_ARRAY(tx, AzihsmI2CState, MBX_MAX_PACKET),
        VMSTATE_UINT32(tx_len, AzihsmI2CState),
        VMSTATE_BOOL(tx_overflow, AzihsmI2CState),
        VMSTATE_UINT32(rx_pos, AzihsmI2CState),
        VMSTATE_UINT32(outstanding, AzihsmI2CState),
        VMSTATE_UINT64(packets_sent, AzihsmI2CState),
        VMSTATE_UINT64(packets_received, AzihsmI2CState),
        VMSTATE_UINT32(mig_rx_len, AzihsmI2CState),
        VMSTATE_VBUFFER_ALLOC_UINT32(mig_rx, AzihsmI2CState, 1, NULL,
                                     mig_rx_len),
        VMSTATE_END_OF_LIST()
    },
};

static int mbx_migration_notify(NotifierWithReturn *notifier,
                                MigrationEvent *e, Error **errp)
{
    AzihsmI2CState *s = container_of(notifier, AzihsmI2CState,
                                     migration_notifier);

    if (e->type == MIG_EVENT_PRECOPY_DONE) {
        /* the guest lives on elsewhere: let go of the serial */
        s->parked = true;
        mbx_link_set(s, LINK_DOWN);
        mbx_link_lost(s);
        if (s->chr_open) {
            qemu_chr_fe_disconnect(&s->chr);
        }
    }
    return 0;
}

static void mbx_vm_state_change(void *opaque, bool running, RunState state)
{
    AzihsmI2CState *s = opaque;

    if (running && s->parked) {
        s->parked = false;
        s->after_migration = true;
        if (s->chr_open && s->link == LINK_DOWN && !s->rx_broken) {
            mbx_link_set(s, LINK_HANDSHAKE);
            mbx_link_send_hello(s);
        }
    }
}

static char *mbx_get_link_state(Object *obj, Error **errp)
{
    return g_strdup(mbx_link_names[AZIHSM_I2C(obj)->link]);
}

static void mbx_instance_init(Object *obj)
{
    AzihsmI2CState *s = AZIHSM_I2C(obj);

    object_property_add_str(obj, "link-state", mbx_get_link_state, NULL);
    object_property_add_uint64_ptr(obj, "packets-sent", &s->packets_sent,
                                   OBJ_PROP_FLAG_READ);
    object_property_add_uint64_ptr(obj, "packets-received",
                                   &s->packets_received, OBJ_PROP_FLAG_READ);
}

static void mbx_realize(DeviceState *dev, Error **errp)
{
    AzihsmI2CState *s = AZIHSM_I2C(dev);
    uint8_t address = I2C_SLAVE(dev)->address;

    if (!s->serial) {
        s->serial = g_strdup(MBX_DEFAULT_SERIAL);
    }
    if (!qemu_chr_fe_backend_connected(&s->chr)) {
        error_setg(errp, "azihsm-i2c: 'chardev' property is required");
        return;
    }
    if (!strlen(s->serial) || strlen(s->serial) > LINK_SERIAL_LEN) {
        error_setg(errp, "azihsm-i2c: 'serial' must be 1 to %d characters",
                   LINK_SERIAL_LEN);
        return;
    }
    for (const char *p = s->serial; *p; p++) {
        if (*p < 0x20 || *p > 0x7e) {
            error_setg(errp, "azihsm-i2c: 'serial' must be printable ASCII");
            return;
        }
    }
    if (address < 0x08 || address > 0x77) {
        error_setg(errp, "azihsm-i2c: 'address' must be a 7-bit address "
                   "0x08..0x77 (got 0x%x)", address);
        return;
    }
    if (!s->backend_timeout_ms) {
        error_setg(errp, "azihsm-i2c: 'backend-timeout-ms' must be at least 1");
        return;
    }
    g_queue_init(&s->rx);
    s->txbuf = g_byte_array_new();
    s->link_bh = qemu_bh_new_guarded(mbx_link_bh, s,
                                     &dev->mem_reentrancy_guard);
    timer_init_ms(&s->timer, QEMU_CLOCK_VIRTUAL, mbx_timeout, s);
    s->parked = runstate_check(RUN_STATE_INMIGRATE);
    s->vmstate_change = qemu_add_vm_change_state_handler(mbx_vm_state_change,
                                                         s);
    migration_add_notifier(&s->migration_notifier, mbx_migration_notify);
    qemu_chr_fe_set_handlers(&s->chr, mbx_can_read, mbx_read, mbx_chr_event,
                             NULL, s, NULL, true);
}

static void mbx_unrealize(DeviceState *dev)
{
    AzihsmI2CState *s = AZIHSM_I2C(dev);

    migration_remove_notifier(&s->migration_notifier);
    qemu_del_vm_change_state_handler(s->vmstate_change);
    qemu_chr_fe_deinit(&s->chr, false);
    timer_del(&s->timer);
    mbx_rx_clear(s);
    mbx_link_clear_io(s);
    g_byte_array_free(s->txbuf, true);
    qemu_bh_delete(s->link_bh);
}

/* QEMU device reset (power-on, system_reset): RESET kind 3. */
static void mbx_reset(DeviceState *dev)
{
    AzihsmI2CState *s = AZIHSM_I2C(dev);

    s->reg = 0;
    s->in_write = false;
    s->rx_done_in_txn = false;
    mbx_abort(s, RESET_FUNCTION);
}

static const Property mbx_props[] = {
    DEFINE_PROP_CHR("chardev", AzihsmI2CState, chr),
    DEFINE_PROP_STRING("serial", AzihsmI2CState, serial),
    DEFINE_PROP_UINT32("backend-timeout-ms", AzihsmI2CState,
                       backend_timeout_ms, 2000),
};

static void mbx_class_init(ObjectClass *oc, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(oc);
    I2CSlaveClass *k = I2C_SLAVE_CLASS(oc);

    dc->realize = mbx_realize;
    dc->unrealize = mbx_unrealize;
    dc->desc = "Azure Integrated HSM serial-bus mailbox (MCTP over I2C)";
    dc->vmsd = &mbx_vmstate;
    device_class_set_props(dc, mbx_props);
    device_class_set_legacy_reset(dc, mbx_reset);
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    k->event = mbx_event;
    k->recv = mbx_recv;
    k->send = mbx_send;
}

static const TypeInfo mbx_info = {
    .name = TYPE_AZIHSM_I2C,
    .parent = TYPE_I2C_SLAVE,
    .instance_size = sizeof(AzihsmI2CState),
    .instance_init = mbx_instance_init,
    .class_init = mbx_class_init,
};

static void mbx_register_types(void)
{
    type_register_static(&mbx_info);
}

type_init(mbx_register_types)
