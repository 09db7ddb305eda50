/*
 * Azure Integrated HSM PCIe function (1414:C003): admin commands
 *
 * The admin queue (qid 0) of the NVMe-like controller: Identify, Set/Get
 * Features, the vendor resource-count commands, and the creation and
 * deletion of HSM and AES I/O queues (docs/device.md, Admin commands).
 * azihsm.c fetches the SQEs and posts the completions.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "system/dma.h"
#include "azihsm.h"
#include "trace.h"

/* Admin opcodes and feature ids (docs/device.md, Admin commands) */
enum {
    ADM_DELETE_SQ       = 0x00,
    ADM_CREATE_SQ       = 0x01,
    ADM_DELETE_CQ       = 0x04,
    ADM_CREATE_CQ       = 0x05,
    ADM_IDENTIFY        = 0x06,
    ADM_SET_FEATURES    = 0x09,
    ADM_GET_FEATURES    = 0x0A,
    ADM_SET_RES_CNT     = 0xC3,
    ADM_GET_RES_CNT     = 0xC4,
};
#define FID_HSM_QUEUES          0x07
#define FID_AES_QUEUES          0xC1
#define FID_FW_CAPS             0xC2
#define IDENTIFY_CNS_CTRL       0x01
#define AZIHSM_CTRL_ID          0

/* ------------------------------------------------------------------------
 * Admin commands
 * ------------------------------------------------------------------------ */

/* True if Create may use I/O qid @qid under the current resource count. */
static bool azihsm_qid_creatable(AzihsmState *s, uint16_t qid)
{
    switch (azihsm_qid_kind(qid)) {
    case QK_HSM:
        return qid - AZIHSM_HSM_QID_FIRST < azihsm_hsm_queue_count(s);
    case QK_AES:
        return qid - AZIHSM_AES_QID_FIRST < azihsm_aes_queue_count(s);
    default:
        return false;
    }
}

typedef struct AzihsmAdminCmd {
    uint8_t opc;
    uint8_t psdt;
    uint16_t cid;
    uint64_t prp1;
    uint32_t dw10;
    uint32_t dw11;
    uint32_t result;        /* CQE DW0 */
} AzihsmAdminCmd;

static uint16_t azihsm_adm_identify(AzihsmState *s, AzihsmAdminCmd *cmd)
{
    uint8_t page[AZIHSM_PAGE_SIZE] = { 0 };
    static const char fw_rev[] = "qemu-azihsm-1.0";

    if ((cmd->dw10 & 0xff) != IDENTIFY_CNS_CTRL) {
        return ST_INVALID_FIELD;
    }
    if (!azihsm_prp_ok(s, cmd->prp1, AZIHSM_PAGE_SIZE)) {
        return ST_DATA_TRANSFER;
    }
    stw_le_p(page + 0, AZIHSM_VENDOR_ID);           /* VID */
    stw_le_p(page + 2, AZIHSM_VENDOR_ID);           /* SSVID */
    memcpy(page + 4, s->serial, strlen(s->serial)); /* NUL padded */
    memcpy(page + 36, fw_rev, sizeof(fw_rev) - 1);
    page[72] = 13;                                  /* CP MDTS: 8 KiB */
    stw_le_p(page + 74, AZIHSM_CTRL_ID);
    page[77] = 0x66;                                /* CP SQES */
    page[78] = 0x44;                                /* CP CQES */
    stw_le_p(page + 80, 2);                         /* CP MAXCMD */
    page[82] = 13;                                  /* FP MDTS */
    page[83] = 0x77;                                /* FP SQES */
    page[84] = 0x66;                                /* FP CQES */
    stw_le_p(page + 86, 4);                         /* FP MAXCMD */
    stl_le_p(page + 96, AZIHSM_VERSION);
    page[100] = 1;                                  /* controller type */
    if (pci_dma_write(PCI_DEVICE(s), cmd->prp1, page, sizeof(page))) {
        return ST_DATA_TRANSFER;
    }
    return ST_SUCCESS;
}

static uint32_t azihsm_queue_count_dw0(uint32_t n)
{
    return (n - 1) << 16 | (n - 1);
}

static uint16_t azihsm_adm_features(AzihsmState *s, AzihsmAdminCmd *cmd)
{
    uint8_t fid = cmd->dw10 & 0xff;

    /* The grant follows the resource count, whatever was asked for. */
    switch (fid) {
    case FID_HSM_QUEUES:
        cmd->result = azihsm_queue_count_dw0(azihsm_hsm_queue_count(s));
        return ST_SUCCESS;
    case FID_AES_QUEUES:
        cmd->result = azihsm_queue_count_dw0(azihsm_aes_queue_count(s));
        return ST_SUCCESS;
    case FID_FW_CAPS:
        if (cmd->opc == ADM_GET_FEATURES) {
            /* bit 0: the AES-GCM tail-buffer workaround (device.md) */
            cmd->result = 1;
            return ST_SUCCESS;
        }
        break;
    }
    return ST_INVALID_FIELD;
}

static uint16_t azihsm_adm_res_cnt(AzihsmState *s, AzihsmAdminCmd *cmd)
{
    if (cmd->dw10 != AZIHSM_CTRL_ID) {
        return ST_INVALID_FIELD;
    }
    if (cmd->opc == ADM_GET_RES_CNT) {
        cmd->result = s->res_cnt;
        return ST_SUCCESS;
    }
    if (cmd->dw11 < 1 || cmd->dw11 > AZIHSM_MAX_RES_CNT) {
        return ST_INVALID_FIELD;
    }
    s->res_cnt = cmd->dw11;
    return ST_SUCCESS;
}

/* Checks shared by Create CQ and Create SQ; returns the slot or -status. */
static int azihsm_create_checks(AzihsmState *s, AzihsmAdminCmd *cmd,
                                bool is_cq, uint32_t *size)
{
    uint16_t qid = cmd->dw10 & 0xffff;
    uint32_t qsize = cmd->dw10 >> 16;          /* 0-based */
    int slot = azihsm_slot(qid);
    const AzihsmQueueFormat *fmt;
    uint32_t entry;

    if (!azihsm_qid_creatable(s, qid) ||
        (is_cq ? s->cq[slot].created : s->sq[slot].created)) {
        return -ST_INVALID_QID;
    }
    if (qsize == 0 || qsize + 1 > AZIHSM_MAX_QSIZE) {
        return -ST_INVALID_QSIZE;
    }
    if (!(cmd->dw11 & 1)) {                     /* PC: CAP.CQR is 1 */
        return -ST_INVALID_FIELD;
    }
    fmt = &azihsm_formats[azihsm_qid_kind(qid)];
    entry = is_cq ? fmt->cqe_size : fmt->sqe_size;
    *size = qsize + 1;
    if (!azihsm_prp_ok(s, cmd->prp1, *size * entry)) {
        return -ST_DATA_TRANSFER;
    }
    return slot;
}

static uint16_t azihsm_adm_create_cq(AzihsmState *s, AzihsmAdminCmd *cmd)
{
    uint16_t iv = cmd->dw11 >> 16;
    bool ien = cmd->dw11 & 2;
    uint32_t size;
    int slot = azihsm_create_checks(s, cmd, true, &size);
    AzihsmCQ *cq;

    if (slot < 0) {
        return -slot;
    }
    if (iv >= AZIHSM_MSIX_VECTORS) {
        return ST_INVALID_VECTOR;
    }
    cq = &s->cq[slot];
    *cq = (AzihsmCQ) {
        .created = true, .qid = cmd->dw10 & 0xffff, .base = cmd->prp1,
        .size = size, .phase = true, .ien = ien, .vector = iv,
    };
    QSIMPLEQ_INIT(&cq->held);
    trace_azihsm_create_cq(cq->qid, size, cq->base, iv, ien);
    return ST_SUCCESS;
}

static uint16_t azihsm_adm_create_sq(AzihsmState *s, AzihsmAdminCmd *cmd)
{
    uint16_t qid = cmd->dw10 & 0xffff;
    uint16_t cqid = cmd->dw11 >> 16;
    uint32_t size;
    int slot = azihsm_create_checks(s, cmd, false, &size);
    AzihsmCQ *cq;
    AzihsmSQ *sq;

    if (slot < 0) {
        return -slot;
    }
    /* The CQ must exist and use the entry format of this SQ's kind. */
    cq = azihsm_find_cq(s, cqid);
    if (!cq || cqid == 0 || azihsm_qid_kind(cqid) != azihsm_qid_kind(qid)) {
        return ST_CQ_INVALID;
    }
    sq = &s->sq[slot];
    *sq = (AzihsmSQ) {
        .created = true, .qid = qid, .cqid = cqid, .base = cmd->prp1,
        .size = size, .gen = sq->gen + 1,
    };
    cq->sq_refs++;
    trace_azihsm_create_sq(qid, size, sq->base, cqid);
    return ST_SUCCESS;
}

static uint16_t azihsm_adm_delete_sq(AzihsmState *s, AzihsmAdminCmd *cmd)
{
    uint16_t qid = cmd->dw10 & 0xffff;
    AzihsmSQ *sq = qid ? azihsm_find_sq(s, qid) : NULL;
    unsigned aborted;

    if (!sq) {
        return ST_INVALID_QID;
    }
    aborted = azihsm_hsm_abort_sq(s, sq);
    trace_azihsm_delete_sq(qid, aborted);
    azihsm_find_cq(s, sq->cqid)->sq_refs--;
    sq->created = false;
    return ST_SUCCESS;
}

static uint16_t azihsm_adm_delete_cq(AzihsmState *s, AzihsmAdminCmd *cmd)
{
    uint16_t qid = cmd->dw10 & 0xffff;
    AzihsmCQ *cq = qid ? azihsm_find_cq(s, qid) : NULL;

    if (!cq) {
        return ST_INVALID_QID;
    }
    if (cq->sq_refs) {
        return ST_INVALID_DELETION;
    }
    trace_azihsm_delete_cq(qid);
    azihsm_cq_drop_held(cq);
    cq->created = false;
    return ST_SUCCESS;
}

static uint16_t azihsm_admin_exec(AzihsmState *s, AzihsmAdminCmd *cmd)
{
    if (cmd->psdt) {
        return ST_INVALID_FIELD;
    }
    switch (cmd->opc) {
    case ADM_IDENTIFY:
        return azihsm_adm_identify(s, cmd);
    case ADM_SET_FEATURES:
    case ADM_GET_FEATURES:
        return azihsm_adm_features(s, cmd);
    case ADM_SET_RES_CNT:
    case ADM_GET_RES_CNT:
        return azihsm_adm_res_cnt(s, cmd);
    case ADM_CREATE_CQ:
        return azihsm_adm_create_cq(s, cmd);
    case ADM_CREATE_SQ:
        return azihsm_adm_create_sq(s, cmd);
    case ADM_DELETE_SQ:
        return azihsm_adm_delete_sq(s, cmd);
    case ADM_DELETE_CQ:
        return azihsm_adm_delete_cq(s, cmd);
    default:
        return ST_INVALID_OPCODE;
    }
}

void azihsm_admin_submit(AzihsmState *s, AzihsmSQ *sq, const uint8_t *sqe)
{
    AzihsmAdminCmd cmd = {
        .opc = sqe[0],
        .psdt = sqe[1] >> 6,
        .cid = lduw_le_p(sqe + 2),
        .prp1 = ldq_le_p(sqe + 24),
        .dw10 = ldl_le_p(sqe + 40),
        .dw11 = ldl_le_p(sqe + 44),
    };
    uint8_t cqe[AZIHSM_MAX_CQE] = { 0 };
    uint16_t status;

    trace_azihsm_admin_cmd(cmd.cid, cmd.opc, cmd.dw10, cmd.dw11);
    status = azihsm_admin_exec(s, &cmd);
    if (status != ST_SUCCESS) {
        qemu_log_mask(LOG_GUEST_ERROR, "azihsm: admin opcode 0x%02x "
                      "(dw10 0x%x dw11 0x%x) failed with status 0x%03x\n",
                      cmd.opc, cmd.dw10, cmd.dw11, status);
    }
    trace_azihsm_admin_done(cmd.cid, cmd.opc, status, cmd.result);
    stl_le_p(cqe + 0, cmd.result);
    stw_le_p(cqe + 12, cmd.cid);
    azihsm_complete(s, sq, status, cqe);
}
