/* SPDX-License-Identifier: GPL-2.0 */
/* Hardware interface of the AziHSM function: registers and queue entry layouts (docs/device.md, "PCI function", "Queue entry formats", "Admin commands"). */
#ifndef AZIHSM_REGS_H
#define AZIHSM_REGS_H

#include <linux/bits.h>
#include <linux/build_bug.h>
#include <linux/stddef.h>
#include <linux/types.h>

#define AZIHSM_BAR_SIZE		4096

/* BAR0 controller registers */
#define AZIHSM_REG_CAP		0x00	/* 64-bit */
#define AZIHSM_REG_VS		0x08
#define AZIHSM_REG_CC		0x14
#define AZIHSM_REG_CSTS		0x1C
#define AZIHSM_REG_NSSR		0x20
#define AZIHSM_REG_AQA		0x24
#define AZIHSM_REG_ASQ		0x28	/* 64-bit */
#define AZIHSM_REG_ACQ		0x30	/* 64-bit */

#define AZIHSM_CAP_TO(cap)	(((cap) >> 24) & 0xff)	/* 500 ms units */

#define AZIHSM_CC_EN		BIT(0)
#define AZIHSM_CC_SIZES_MASK	GENMASK(31, 16)
/* HSM ("CP") SQE 2^6, CQE 2^4; AES ("FP") SQE 2^7, CQE 2^6 */
#define AZIHSM_CC_SIZES		((6u << 16) | (4u << 20) | (7u << 24) | (6u << 28))

#define AZIHSM_CSTS_RDY		BIT(0)
#define AZIHSM_CSTS_CFS		BIT(1)
#define AZIHSM_CSTS_GONE	0xFFFFFFFFu

#define AZIHSM_NSSR_MAGIC	0x4E564D65u	/* "NVMe" */
#define AZIHSM_AQA_VALUE	0x000F000Fu	/* 16-entry admin SQ and CQ, 0-based */

/* BAR2 doorbells: SQ y tail at 8*y, CQ y head at 8*y + 4 */
#define AZIHSM_SQ_DB(qid)	(8u * (qid))
#define AZIHSM_CQ_DB(qid)	(8u * (qid) + 4u)

/* Queue ids and sizes */
#define AZIHSM_ADMIN_QID	0
#define AZIHSM_ADMIN_DEPTH	16
#define AZIHSM_HSM_QID_BASE	1
#define AZIHSM_HSM_MAX_QUEUES	255
#define AZIHSM_AES_QID_BASE	256
#define AZIHSM_AES_MAX_QUEUES	256
#define AZIHSM_AES_VECTOR_BASE	16
#define AZIHSM_MIN_VECTORS	3
#define AZIHSM_MAX_VECTORS	32

/* Admin opcodes */
#define AZIHSM_ADM_DELETE_SQ	0x00
#define AZIHSM_ADM_CREATE_SQ	0x01
#define AZIHSM_ADM_DELETE_CQ	0x04
#define AZIHSM_ADM_CREATE_CQ	0x05
#define AZIHSM_ADM_IDENTIFY	0x06
#define AZIHSM_ADM_SET_FEATURES	0x09
#define AZIHSM_ADM_GET_FEATURES	0x0A
#define AZIHSM_ADM_SET_RES_CNT	0xC3

#define AZIHSM_IDENTIFY_CNS_CTRL 0x01
#define AZIHSM_FID_HSM_QUEUES	0x07
#define AZIHSM_FID_AES_QUEUES	0xC1
#define AZIHSM_FID_FW_CAPS	0xC2
#define AZIHSM_QUEUE_COUNT_REQ	0x00800080u	/* 128 SQs, 128 CQs */

/* HSM SQE opc values sent by the driver itself */
#define AZIHSM_HSM_OPC_FLUSH_SESSION 1

/* Admin SQE, NVMe layout */
struct azihsm_admin_sqe {
	u8 opcode;
	u8 flags;
	__le16 cid;
	u8 rsvd0[12];
	__le64 mptr;
	__le64 prp1;
	__le64 prp2;
	__le32 cdw[6];	/* DW10..DW15 */
} __packed;

/* Admin CQE */
struct azihsm_admin_cqe {
	__le32 dw0;
	__le32 rsvd;
	__le16 sqhd;
	__le16 sqid;
	__le16 cid;
	__le16 status;	/* bit 0 phase; bits 11:1 status */
} __packed;

/* HSM ("CP") SQE */
struct azihsm_hsm_sqe {
	__le32 dw0;	/* opc 9:0, cmdset 13:10, psdt 15:14, cid 31:16 */
	__le32 src_len;
	__le64 src_prp1;
	__le64 src_prp2;
	__le32 dst_len;
	__le64 dst_prp1;
	__le64 dst_prp2;
	u8 session_flags;
	u8 rsvd0[3];
	__le16 session_id;
	u8 rsvd1[14];
} __packed;

/* HSM ("CP") CQE */
struct azihsm_hsm_cqe {
	__le16 byte_count;
	u8 session_flags;
	u8 rsvd0;
	__le16 session_id;
	u8 short_app_id;
	u8 rsvd1;
	__le16 sqhd;
	__le16 sqid;
	__le16 cid;
	__le16 status;	/* bit 0 phase; bits 11:1 status */
} __packed;

/* SGL descriptor (NVMe format), AES commands only (docs/device.md, "AES queues and the AES path") */
struct azihsm_sgl_desc {
	__le64 addr;
	__le32 len;
	u8 rsvd[3];
	u8 type;	/* type in bits 7:4, subtype (0 = address) in bits 3:0 */
} __packed;

#define AZIHSM_SGL_DATA_BLOCK	0x00
#define AZIHSM_SGL_SEGMENT	0x20
#define AZIHSM_SGL_LAST_SEGMENT	0x30
#define AZIHSM_SGL_PER_PAGE	255	/* data descriptors per list page; slot 255 links */

/* AES ("FP") SQE attr bits */
#define AZIHSM_AES_ATTR_DECRYPT	BIT(0)
#define AZIHSM_AES_ATTR_PSDT_SGL BIT(2)
#define AZIHSM_AES_ATTR_CMD_AES	(5u << 3)
#define AZIHSM_AES_ATTR_XTS	BIT(8)
#define AZIHSM_AES_ATTR_DUL(d)	((u16)(d) << 14)

/* AES ("FP") SQE */
struct azihsm_aes_sqe {
	u8 rsvd0[4];
	__le16 attr;
	__le16 cid;
	__le16 session_id;
	u8 short_app_id;
	u8 rsvd1[13];
	__le32 src_len;
	struct azihsm_sgl_desc src;
	__le32 dst_len;
	struct azihsm_sgl_desc dst;
	u8 frame_type;
	u8 rsvd2[3];
	union {
		struct {
			__le32 key_id;
			__le32 actual_aad_len;
			u8 tag[16];
			u8 iv[12];
			__le32 aligned_aad_len;
			u8 src_tail_len;
			u8 dst_tail_len;
			u8 rsvd[2];
			__le64 src_tail_addr;
			__le64 dst_tail_addr;
		} __packed gcm;
		struct {
			__le32 key_id1;
			__le32 key_id2;
			u8 tweak[16];
			u8 rsvd[36];
		} __packed xts;
	};
} __packed;

/* AES ("FP") CQE */
struct azihsm_aes_cqe {
	__le16 attr;
	__le16 cid;
	u8 cmd_spec[16];	/* GCM tag */
	u8 iv[12];
	u8 rsvd0[12];
	__le32 dst_tail_len;
	__le32 fips_approved;
	__le32 len;
	__le16 sqhd;
	__le16 sqid;
	__le16 err;
	__le16 status;	/* bit 0 phase; bits 15:1 status */
} __packed;

#define AZIHSM_AES_CQE_STATUS(raw) ((raw) >> 1)

#define AZIHSM_HSM_OPC_MASK	GENMASK(9, 0)
#define AZIHSM_CQE_STATUS(raw)	(((raw) >> 1) & 0x7ff)

/* Where the CID, SQ head and phase/status live in each entry format. */
struct azihsm_qfmt {
	u16 sqe_size;
	u16 cqe_size;
	u8 sqe_cid_off;
	u8 cqe_cid_off;
	u8 cqe_sqhd_off;
	u8 cqe_status_off;
};

static_assert(sizeof(struct azihsm_admin_sqe) == 64);
static_assert(sizeof(struct azihsm_admin_cqe) == 16);
static_assert(sizeof(struct azihsm_hsm_sqe) == 64);
static_assert(sizeof(struct azihsm_hsm_cqe) == 16);
static_assert(sizeof(struct azihsm_sgl_desc) == 16);
static_assert(sizeof(struct azihsm_aes_sqe) == 128);
static_assert(offsetof(struct azihsm_aes_sqe, gcm.src_tail_addr) == 112);
static_assert(offsetof(struct azihsm_aes_sqe, xts.tweak) == 76);
static_assert(sizeof(struct azihsm_aes_cqe) == 64);
static_assert(offsetof(struct azihsm_aes_cqe, dst_tail_len) == 44);

#endif /* AZIHSM_REGS_H */
