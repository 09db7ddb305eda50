/*
 * Azure Integrated HSM PCIe function (1414:C003): the link to the backend
 *
 * Every HSM-queue command goes to an out-of-process backend over a chardev
 * and comes back as a RESPONSE (docs/link-protocol.md).  This file holds the
 * conversation itself: frame output (buffered, never blocking), HELLO and
 * HELLO_ACK, the frame parser, protocol errors and connection events.  The
 * commands behind the frames live in azihsm.c (docs/device.md, Backend link).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "chardev/char-socket.h"
#include "io/channel.h"
#include "azihsm.h"
#include "trace.h"

static const char *const azihsm_link_state_names[] = {
    [LINK_DOWN] = "down",
    [LINK_HANDSHAKE] = "handshake",
    [LINK_UP] = "up",
    [LINK_REFUSED] = "refused",
};

static void azihsm_link_protocol_error(AzihsmState *s, const char *why);

/* ------------------------------------------------------------------------
 * Backend link: output
 * ------------------------------------------------------------------------ */

const char *azihsm_link_state_name(AzihsmState *s)
{
    return azihsm_link_state_names[s->link];
}

static void azihsm_link_set_state(AzihsmState *s, AzihsmLinkState state)
{
    s->link = state;
    trace_azihsm_link_state(azihsm_link_state_name(s));
}

/*
 * Queue one frame, never write it here: the link bottom half writes it, or
 * the doorbell write that queued it (azihsm_link_push).
 */
void azihsm_link_send(AzihsmState *s, uint8_t type, uint32_t msg_id,
                      const void *body, uint32_t body_len,
                      const void *payload, uint32_t payload_len)
{
    uint8_t hdr[LINK_HDR_SIZE];

    memcpy(hdr, LINK_MAGIC, 4);
    hdr[4] = LINK_VERSION;
    hdr[5] = type;
    stw_le_p(hdr + 6, 0);
    stl_le_p(hdr + 8, msg_id);
    stl_le_p(hdr + 12, body_len + payload_len);
    g_byte_array_append(s->txbuf, hdr, sizeof(hdr));
    g_byte_array_append(s->txbuf, body, body_len);
    if (payload_len) {
        g_byte_array_append(s->txbuf, payload, payload_len);
    }
    trace_azihsm_link_tx(type, msg_id, body_len + payload_len);
    if (s->txbuf->len > LINK_OUTBUF_LIMIT) {
        azihsm_link_protocol_error(s, "backend does not read its socket");
        return;
    }
    if (!s->tx_inline) {
        qemu_bh_schedule(s->link_bh);
    }
}

static void azihsm_link_send_u32(AzihsmState *s, uint8_t type,
                                 uint32_t msg_id, uint32_t value)
{
    uint8_t body[4];

    if (s->link != LINK_UP) {
        return;
    }
    stl_le_p(body, value);
    azihsm_link_send(s, type, msg_id, body, sizeof(body), NULL, 0);
}

static void azihsm_link_send_hello(AzihsmState *s)
{
    uint8_t body[8 + LINK_SERIAL_LEN + 4] = { 0 };

    stw_le_p(body + 0, LINK_VERSION);
    stw_le_p(body + 2, LINK_MINOR);
    stw_le_p(body + 4, LINK_MAX_INFLIGHT);
    memcpy(body + 8, s->serial, strlen(s->serial));
    stl_le_p(body + 8 + LINK_SERIAL_LEN, s->partition);
    azihsm_link_send(s, MSG_HELLO, 0, body, sizeof(body), NULL, 0);
}

void azihsm_link_send_reset(AzihsmState *s, uint32_t kind)
{
    azihsm_link_send_u32(s, MSG_RESET, 0, kind);
}

void azihsm_link_send_cancel(AzihsmState *s, uint32_t msg_id)
{
    azihsm_link_send_u32(s, MSG_CANCEL, 0, msg_id);
}

static gboolean azihsm_link_writable(void *do_not_use, GIOCondition cond,
                                     void *opaque);

/* Write what the socket takes now; wait for G_IO_OUT for the rest. */
static void azihsm_link_flush(AzihsmState *s)
{
    int n;

    if (!s->txbuf->len || s->tx_watch) {
        return;
    }
    n = qemu_chr_fe_write(&s->chr, s->txbuf->data, s->txbuf->len);
    if (n < 0 && errno != EAGAIN) {
        /* The chardev reports the loss with CHR_EVENT_CLOSED. */
        return;
    }
    if (n > 0) {
        g_byte_array_remove_range(s->txbuf, 0, n);
    }
    trace_azihsm_link_flush(MAX(n, 0), s->txbuf->len);
    if (s->txbuf->len) {
        s->tx_watch = qemu_chr_fe_add_watch(&s->chr, G_IO_OUT | G_IO_HUP,
                                            azihsm_link_writable, s);
        if (!s->tx_watch) {
            azihsm_link_protocol_error(s, "chardev cannot wait for output");
        }
    }
}

static gboolean azihsm_link_writable(void *do_not_use, GIOCondition cond,
                                     void *opaque)
{
    AzihsmState *s = opaque;

    s->tx_watch = 0;
    azihsm_link_flush(s);
    return G_SOURCE_REMOVE;
}

/*
 * Write the queued frames now, in the caller's thread (a vCPU's doorbell
 * write, holding the BQL), instead of waking the main loop to do it.
 */
void azihsm_link_push(AzihsmState *s)
{
    if (!s->rx_broken) {
        azihsm_link_flush(s);
    }
}

static void azihsm_link_bh(void *opaque)
{
    AzihsmState *s = opaque;

    if (s->rx_broken) {
        s->rx_broken = false;
        qemu_chr_fe_disconnect(&s->chr);
        return;
    }
    azihsm_link_flush(s);
}

static void azihsm_link_clear_io(AzihsmState *s)
{
    if (s->tx_watch) {
        g_source_remove(s->tx_watch);
        s->tx_watch = 0;
    }
    g_byte_array_set_size(s->txbuf, 0);
    g_clear_pointer(&s->rx_body, g_free);
    s->rx_have = 0;
    s->rx_body_len = 0;
    s->rx_in_body = false;
}

/* ------------------------------------------------------------------------
 * Backend link: input and connection events
 * ------------------------------------------------------------------------ */

/* Fatal link error: fail everything now, drop the connection from a BH. */
static void azihsm_link_protocol_error(AzihsmState *s, const char *why)
{
    warn_report("azihsm: backend link error: %s; disconnecting", why);
    trace_azihsm_link_error(why);
    azihsm_link_set_state(s, LINK_DOWN);
    azihsm_req_fail_all(s, ST_BACKEND_UNAVAILABLE);
    azihsm_link_clear_io(s);
    s->rx_broken = true;
    qemu_bh_schedule(s->link_bh);
}

static void azihsm_link_hello_ack(AzihsmState *s, const uint8_t *body,
                                  uint32_t len)
{
    uint16_t major, credits, result;

    if (s->link != LINK_HANDSHAKE || len != 8) {
        azihsm_link_protocol_error(s, "unexpected or malformed HELLO_ACK");
        return;
    }
    major = lduw_le_p(body);
    credits = lduw_le_p(body + 4);
    result = lduw_le_p(body + 6);
    trace_azihsm_link_hello_ack(major, lduw_le_p(body + 2), credits, result);
    if (result == HELLO_ACCEPTED && major == LINK_VERSION) {
        if (!credits) {
            azihsm_link_protocol_error(s, "HELLO_ACK grants no credits");
            return;
        }
        s->credits = credits;
        s->backend_minor = lduw_le_p(body + 2);
        s->rot_failed = false;
        s->lm_busy = false;
        azihsm_link_set_state(s, LINK_UP);
        if (s->lm_reset_pending) {
            /*
             * First frame after a migration (or snapshot load): the HSM
             * behind this link sees an NSSR before any command, and the
             * device forwards nothing until it has been acknowledged
             * (docs/device.md, Migration).
             */
            s->lm_reset_pending = false;
            s->lm_reset_wait = true;
            s->lm_resets++;
            /* the source's context first, if the stream carried one */
            azihsm_lm_ctx_hand_over(s);
            trace_azihsm_migrate("post-migration NSSR sent", s->lm_resets);
            azihsm_link_send_reset(s, RESET_NSSR);
        }
        azihsm_set_ready(s);
        azihsm_kick(s);
        return;
    }
    if (result == HELLO_BUSY && s->lm_reset_pending) {
        /*
         * The migration source still holds this serial/partition: it lets
         * go when its migration completes.  Drop this connection; the
         * chardev's reconnect-ms brings a new HELLO.
         */
        trace_azihsm_migrate("backend busy: source still connected, retrying",
                             0);
        azihsm_link_set_state(s, LINK_DOWN);
        s->lm_busy = true;
        s->rx_broken = true;
        qemu_bh_schedule(s->link_bh);
        return;
    }
    warn_report("azihsm: backend refused serial '%s' partition %u "
                "(result %u, version %u)", s->serial, s->partition,
                result, major);
    s->rot_failed = result == HELLO_ROT_FAILURE;
    azihsm_link_set_state(s, LINK_REFUSED);
    azihsm_set_ready(s);
}

/* Handle the frame just read; it owns @body (NULL for an empty body). */
static void azihsm_link_dispatch(AzihsmState *s, uint8_t *body)
{
    g_autofree uint8_t *owned = body;
    uint8_t type = s->rx_hdr[5];
    uint32_t msg_id = ldl_le_p(s->rx_hdr + 8);
    uint32_t len = s->rx_body_len;

    trace_azihsm_link_rx(type, msg_id, len);
    switch (type) {
    case MSG_HELLO_ACK:
        azihsm_link_hello_ack(s, body, len);
        break;
    case MSG_RESPONSE:
        if (s->link != LINK_UP) {
            azihsm_link_protocol_error(s, "RESPONSE before HELLO_ACK");
        } else {
            azihsm_hsm_response(s, msg_id, body, len);
        }
        break;
    case MSG_AES_RESPONSE:
        if (s->link != LINK_UP) {
            azihsm_link_protocol_error(s, "AES_RESPONSE before HELLO_ACK");
        } else {
            azihsm_aes_response(s, msg_id, body, len);
        }
        break;
    case MSG_LM_CTX:
        if (s->link != LINK_UP) {
            azihsm_link_protocol_error(s, "MIGRATION_CONTEXT before HELLO_ACK");
        } else {
            azihsm_lm_ctx_answer(s, body, len);
        }
        break;
    case MSG_LM_CTX_SET_ACK:
        if (s->link != LINK_UP) {
            azihsm_link_protocol_error(s, "SET_ACK before HELLO_ACK");
        } else {
            azihsm_lm_ctx_set_ack(s, body, len);
        }
        break;
    case MSG_RESET_ACK:
        if (len != 4) {
            azihsm_link_protocol_error(s, "malformed RESET_ACK");
        } else if (ldl_le_p(body) == RESET_NSSR && s->lm_reset_wait) {
            s->lm_reset_wait = false;
            trace_azihsm_migrate("post-migration NSSR acknowledged",
                                 s->lm_resets);
            azihsm_kick(s);
        }
        break;
    }
}

/* Validate a complete header; false after a protocol error. */
static bool azihsm_link_check_header(AzihsmState *s)
{
    const uint8_t *h = s->rx_hdr;
    uint8_t type = h[5];

    if (memcmp(h, LINK_MAGIC, 4)) {
        azihsm_link_protocol_error(s, "bad frame magic");
    } else if (h[4] != LINK_VERSION) {
        azihsm_link_protocol_error(s, "unsupported frame version");
    } else if (lduw_le_p(h + 6)) {
        azihsm_link_protocol_error(s, "nonzero frame flags");
    } else if (type != MSG_HELLO_ACK && type != MSG_RESPONSE &&
               type != MSG_RESET_ACK && type != MSG_AES_RESPONSE &&
               type != MSG_LM_CTX && type != MSG_LM_CTX_SET_ACK) {
        azihsm_link_protocol_error(s, "unknown or misdirected frame type");
    } else if (ldl_le_p(h + 12) > (type == MSG_AES_RESPONSE ?
                                   LINK_MAX_AES_BODY : LINK_MAX_BODY)) {
        azihsm_link_protocol_error(s, "frame body too long");
    } else {
        s->rx_body_len = ldl_le_p(h + 12);
        return true;
    }
    return false;
}

/*
 * Any number of bytes, frames or parts of frames: azihsm_link_read takes
 * them apart.  Offering a whole buffer lets a small frame's header and body
 * arrive in one read and one main-loop turn.
 */
static int azihsm_link_can_read(void *opaque)
{
    AzihsmState *s = opaque;

    return s->rx_broken ? 0 : LINK_READ_OFFER;
}

/*
 * The rest of a frame body straight from the socket, as much as it holds
 * now (never waiting, never past the body).  The socket chardev hands a
 * frontend at most 4 KiB per main-loop turn, so a 1 MiB AES_RESPONSE would
 * take 256 turns, each competing with the vCPUs for the BQL, and a 4 KiB one
 * two (docs/benchmarks.md, "Guest: AES fast path throughput").  Only for a
 * plain socket chardev (no telnet framing); anything else keeps the
 * chardev's own reads, and so does an end of stream or an error, which the
 * chardev then sees and reports.
 */
static void azihsm_link_read_body(AzihsmState *s)
{
    Chardev *chr = qemu_chr_fe_get_driver(&s->chr);
    SocketChardev *sock;

    if (!object_dynamic_cast(OBJECT(chr), TYPE_CHARDEV_SOCKET)) {
        return;
    }
    sock = SOCKET_CHARDEV(chr);
    if (sock->state != TCP_CHARDEV_STATE_CONNECTED || !sock->ioc ||
        sock->do_telnetopt) {
        return;
    }
    while (s->rx_have < s->rx_body_len) {
        ssize_t n = qio_channel_read(sock->ioc,
                                     (char *)s->rx_body + s->rx_have,
                                     s->rx_body_len - s->rx_have, NULL);
        if (n <= 0) {
            return;
        }
        s->rx_have += n;
    }
}

static void azihsm_link_read(void *opaque, const uint8_t *buf, int size)
{
    AzihsmState *s = opaque;

    /* @buf may end anywhere: inside a header, a body or a later frame */
    while (!s->rx_broken) {
        uint32_t need = s->rx_in_body ? s->rx_body_len : LINK_HDR_SIZE;
        uint32_t n = MIN(need - s->rx_have, (uint32_t)size);

        memcpy((s->rx_in_body ? s->rx_body : s->rx_hdr) + s->rx_have, buf, n);
        s->rx_have += n;
        buf += n;
        size -= n;
        if (s->rx_in_body && !size && s->rx_have < need) {
            azihsm_link_read_body(s);
        }
        if (s->rx_have < need) {
            return;             /* the rest comes with a later read */
        }
        s->rx_have = 0;
        if (!s->rx_in_body) {
            if (!azihsm_link_check_header(s)) {
                return;
            }
            s->rx_in_body = s->rx_body_len > 0;
            if (s->rx_in_body) {
                s->rx_body = g_malloc(s->rx_body_len);
                continue;
            }
        }
        s->rx_in_body = false;
        azihsm_link_dispatch(s, g_steal_pointer(&s->rx_body));
    }
}

static void azihsm_link_event(void *opaque, QEMUChrEvent event)
{
    AzihsmState *s = opaque;

    switch (event) {
    case CHR_EVENT_OPENED:
        trace_azihsm_link_event("opened");
        s->chr_open = true;
        azihsm_req_fail_all(s, ST_BACKEND_UNAVAILABLE);
        azihsm_link_clear_io(s);
        s->rx_broken = false;
        azihsm_link_set_state(s, LINK_DOWN);
        azihsm_link_start_handshake(s);
        break;
    case CHR_EVENT_CLOSED:
        trace_azihsm_link_event("closed");
        s->chr_open = false;
        azihsm_link_set_state(s, LINK_DOWN);
        azihsm_req_fail_all(s, ST_BACKEND_UNAVAILABLE);
        azihsm_link_clear_io(s);
        s->rx_broken = false;
        azihsm_lm_ctx_link_lost(s);
        if (s->lm_reset_wait) {
            /* not acknowledged: send it again on the next connection */
            s->lm_reset_wait = false;
            s->lm_reset_pending = true;
        }
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------------
 * Backend link: set-up and tear-down
 * ------------------------------------------------------------------------ */

/*
 * Send HELLO on an open connection that has none in progress, unless the
 * device is parked: a migration destination before its VM runs, or a
 * source whose guest now lives elsewhere (docs/device.md, Migration).
 */
void azihsm_link_start_handshake(AzihsmState *s)
{
    if (!s->chr_open || s->link != LINK_DOWN || s->rx_broken) {
        return;
    }
    if (s->parked) {
        trace_azihsm_migrate("link parked: no HELLO", 0);
        return;
    }
    azihsm_link_clear_io(s);
    azihsm_link_set_state(s, LINK_HANDSHAKE);
    azihsm_link_send_hello(s);
}

/* Give up the backend's serial/partition: disconnect and send no HELLO. */
void azihsm_link_park(AzihsmState *s)
{
    s->parked = true;
    if (s->link != LINK_DOWN) {
        azihsm_link_set_state(s, LINK_DOWN);
        azihsm_req_fail_all(s, ST_BACKEND_UNAVAILABLE);
        azihsm_link_clear_io(s);
    }
    if (s->chr_open) {
        qemu_chr_fe_disconnect(&s->chr);
    }
}

/* Last step of realize: once the handlers are set, events may arrive. */
void azihsm_link_realize(AzihsmState *s)
{
    DeviceState *dev = DEVICE(s);

    s->link_bh = qemu_bh_new_guarded(azihsm_link_bh, s,
                                     &dev->mem_reentrancy_guard);
    s->txbuf = g_byte_array_new();
    qemu_chr_fe_set_handlers(&s->chr, azihsm_link_can_read, azihsm_link_read,
                             azihsm_link_event, NULL, s, NULL, true);
}

/* First step of exit: no event arrives after this. */
void azihsm_link_unrealize(AzihsmState *s)
{
    qemu_chr_fe_deinit(&s->chr, false);
    azihsm_link_clear_io(s);
    g_byte_array_free(s->txbuf, true);
    qemu_bh_delete(s->link_bh);
}
