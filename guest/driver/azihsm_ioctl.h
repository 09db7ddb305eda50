/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Userspace ABI of /dev/azihsmN (docs/guest-driver.md, "ioctl ABI"). Layouts are fixed for x86-64;
 * the static assertions in the driver pin every size.
 */
#ifndef AZIHSM_IOCTL_H
#define AZIHSM_IOCTL_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define AZIHSM_IOCTL_MAGIC 'B'
#define AZIHSM_MAX_BUFFER 8192

/* Header shared by the HSM command and reset structures. */
struct azihsm_ioctl_hdr {
	__u32 szioctldata;	/* size of the whole structure; must be >= sizeof */
	__u32 appcmdid;		/* unused */
	__u32 timeout;		/* unused */
	__u32 flags;		/* unused */
};

/* Session side band (in.session_flags, SQE byte 44, CQE byte 2). */
#define AZIHSM_SESSION_OP_MASK		0x03
#define AZIHSM_SESSION_OP_NONE		0
#define AZIHSM_SESSION_OP_OPEN		1
#define AZIHSM_SESSION_OP_CLOSE		2
#define AZIHSM_SESSION_OP_IN_SESSION	3
#define AZIHSM_SESSION_ID_VALID		0x04
#define AZIHSM_SESSION_SHORT_APP_ID_VALID 0x08	/* CQE only */
#define AZIHSM_SESSION_SAFE_TO_CLOSE	0x10	/* CQE only */

/* One MBOR DDI command: 112 bytes. */
struct azihsm_cp_generic_cmd {
	struct azihsm_ioctl_hdr hdr;
	struct {
		__u64 ctxt;		/* echoed to out.ctxt */
		__u16 opc;		/* SQE opc (10 bits); 0 = MBOR DDI request */
		__u16 cmdset;		/* must be 0 */
		__u8 psdt;		/* ignored */
		__u8 rsvd0[3];
		__u32 src_length;	/* <= 8192; 0 iff src_buf is 0 */
		__u32 rsvd1;
		__u64 src_buf;		/* user pointer to the request */
		__u32 dst_length;	/* <= 8192; 0 iff dst_buf is 0 */
		__u32 rsvd2;
		__u64 dst_buf;		/* user pointer to the response buffer */
		__u8 session_flags;	/* AZIHSM_SESSION_* */
		__u8 rsvd3;
		__u16 session_id;
		__u8 rsvd4[20];
	} in;
	struct {
		__u64 ctxt;
		__u32 status;		/* CQE 11-bit status; nonzero does not fail the ioctl */
		__u32 byte_count;	/* response bytes copied to dst_buf */
		__u32 ioctl_extended_status;	/* AZIHSM_EXT_*; meaningful when the ioctl fails */
		__u32 rsvd;
	} out;
};

/* Extended status codes (out.ioctl_extended_status). */
#define AZIHSM_EXT_NO_MEMORY		1
#define AZIHSM_EXT_BAD_CMDSET		2
#define AZIHSM_EXT_SRC_TOO_LONG		3
#define AZIHSM_EXT_DST_TOO_LONG		4
#define AZIHSM_EXT_BAD_SRC_BUF		5
#define AZIHSM_EXT_BAD_DST_BUF		7
#define AZIHSM_EXT_DEVICE_ERROR		10
#define AZIHSM_EXT_SESSION_LIMIT	11
#define AZIHSM_EXT_NO_SESSION		12
#define AZIHSM_EXT_BAD_SESSION_OP	13
#define AZIHSM_EXT_SESSION_MISMATCH	14
#define AZIHSM_EXT_ABORT_IN_PROGRESS	0x04000001
#define AZIHSM_EXT_CMD_ABORTED		0x04000002
#define AZIHSM_EXT_NOT_READY		0x0400000A

/* Device information: 176 bytes. */
struct azihsm_ctrl_dev_info {
	__u32 argsz;			/* must be >= 176 */
	__u16 id;			/* Identify controller id */
	char pci_info[33];		/* BDF, NUL-terminated */
	char serial[33];		/* Identify serial, NUL-terminated */
	char model[5];			/* always zero */
	char fw_rev[33];		/* Identify firmware revision, NUL-terminated */
	char driver_rev[16];		/* "3.2.0" */
	__u8 reserved[17];
	__u8 device_entropy[32];	/* random bytes drawn by the driver at probe */
};

/* Application-requested level-2 abort: 272 bytes. */
#define AZIHSM_RESET_NSSR		1
#define AZIHSM_RESET_CC_EN		2

#define AZIHSM_RESET_STS_OK		0
#define AZIHSM_RESET_STS_IN_PROGRESS	1
#define AZIHSM_RESET_STS_BAD_STATE	2
#define AZIHSM_RESET_STS_FAILED		3
#define AZIHSM_RESET_STS_BAD_TYPE	4

struct azihsm_reset_device_data {
	struct azihsm_ioctl_hdr hdr;	/* szioctldata >= 272 */
	__u64 ctxt;
	__u32 abort_type;		/* AZIHSM_RESET_NSSR or AZIHSM_RESET_CC_EN */
	__u8 rsvd0[80];
	__u32 abort_sts;		/* AZIHSM_RESET_STS_* */
	__u8 rsvd1[160];
};

/* AES fast path (docs/guest-driver.md, "AES fast path"): 400 bytes, on the HSM fd. */
#define AZIHSM_AES_OP_ENCRYPT		0
#define AZIHSM_AES_OP_DECRYPT		1
#define AZIHSM_AES_CIPHER_GCM		0
#define AZIHSM_AES_CIPHER_XTS		1
#define AZIHSM_AES_FRAME_TYPE_AES	1
#define AZIHSM_AES_DUL_FULL		0	/* XTS data unit: the whole buffer */
#define AZIHSM_AES_DUL_512		1
#define AZIHSM_AES_DUL_4096		2
#define AZIHSM_AES_DUL_8192		3

struct azihsm_aes_xts_params {
	__u16 data_unit_len;	/* AZIHSM_AES_DUL_* */
	__u16 rsvd;
	__u32 key_id1;		/* data key (bulk key id) */
	__u32 key_id2;		/* tweak key */
	__u8 tweak[16];
	__u8 rsvd1[16];		/* pads the union to the GCM size */
};

struct azihsm_aes_gcm_params {
	__u32 key_id;			/* bulk key id */
	__u8 tag[16];			/* decrypt: the expected tag */
	__u8 iv[12];
	__u32 actual_aad_len;		/* the real AAD, without padding */
	__u32 aligned_aad_len;		/* the AAD region at the start of src, padding included */
	__u8 enable_gcm_workaround;	/* the caller understands the tail-buffer workaround */
	__u8 rsvd[3];
};

struct azihsm_aes_ioctl {
	struct azihsm_ioctl_hdr hdr;	/* szioctldata >= 400 */
	__u64 ctxt;			/* echoed to out_ctxt */
	__u8 op_code;			/* AZIHSM_AES_OP_* */
	__u8 cipher;			/* AZIHSM_AES_CIPHER_*; must match the ioctl */
	__u8 rsvd0[6];
	__u64 src_ptr;			/* GCM: aligned AAD then data; XTS: data */
	__u32 src_len;
	__u32 rsvd1;
	__u64 dst_ptr;
	__u32 dst_len;
	__u32 rsvd2;
	__u8 frame_type;		/* AZIHSM_AES_FRAME_TYPE_AES */
	__u8 rsvd3;
	__u16 session_id;		/* the fd's session */
	__u8 short_app_id;		/* the fd's short app id */
	__u8 rsvd4[3];
	union {
		struct azihsm_aes_xts_params xts;
		struct azihsm_aes_gcm_params gcm;
	};
	__u8 rsvd5[124];
	__u64 out_ctxt;
	__u32 out_result;		/* CQE status; nonzero: the device refused the command */
	__u8 out_cmd_spec[16];		/* GCM encrypt: the tag */
	__u32 out_byte_count;		/* output bytes written to dst (0 on failure) */
	__u32 out_extended_status;	/* CQE err, or AZIHSM_AES_EXT_* / AZIHSM_EXT_* from the driver */
	__u8 out_fips_approved;
	__u8 rsvd6[3];
	__u8 out_iv_from_fw[12];	/* GCM encrypt: the IV used */
	__u8 rsvd7[108];
};

/* AES extended status codes set by the driver (out_extended_status). */
#define AZIHSM_AES_EXT_NO_MEMORY		100
#define AZIHSM_AES_EXT_BAD_SRC			101
#define AZIHSM_AES_EXT_SRC_FAULT		102
#define AZIHSM_AES_EXT_BAD_DST			103
#define AZIHSM_AES_EXT_DST_FAULT		104
#define AZIHSM_AES_EXT_NOT_OWNER		105
#define AZIHSM_AES_EXT_DEVICE_ERROR		106
#define AZIHSM_AES_EXT_SESSION_MISMATCH		107
#define AZIHSM_AES_EXT_SHORT_APP_ID_MISMATCH	108
#define AZIHSM_AES_EXT_NO_SESSION		109
#define AZIHSM_AES_EXT_NO_SHORT_APP_ID		110
#define AZIHSM_AES_EXT_NO_AES_QUEUES		111
#define AZIHSM_AES_EXT_BAD_CIPHER		112
#define AZIHSM_AES_EXT_BAD_FRAME_TYPE		113
#define AZIHSM_AES_EXT_BAD_OPCODE		114
#define AZIHSM_AES_EXT_SRC_TOO_LONG		115
#define AZIHSM_AES_EXT_DST_TOO_LONG		116
#define AZIHSM_AES_EXT_GCM_INVALID		117
#define AZIHSM_AES_EXT_XTS_INVALID		118

#define AZIHSM_CTRL_PATH_GENERIC_IOCTL	_IOWR(AZIHSM_IOCTL_MAGIC, 2, struct azihsm_cp_generic_cmd)
#define AZIHSM_CTRL_PATH_GENERIC_IOCTL_SESSION _IOWR(AZIHSM_IOCTL_MAGIC, 3, struct azihsm_cp_generic_cmd)
#define AZIHSM_GET_DEV_INFO_IOCTL	_IOWR(AZIHSM_IOCTL_MAGIC, 4, struct azihsm_ctrl_dev_info)
#define AZIHSM_IOCTL_RESET_DEVICE	_IOWR(AZIHSM_IOCTL_MAGIC, 6, struct azihsm_reset_device_data)
#define AZIHSM_AES_DEV_IOCTL_CMD_XTS	_IOWR(AZIHSM_IOCTL_MAGIC, 0xB, struct azihsm_aes_ioctl)
#define AZIHSM_AES_DEV_IOCTL_CMD_GCM	_IOWR(AZIHSM_IOCTL_MAGIC, 0xC, struct azihsm_aes_ioctl)

#endif /* AZIHSM_IOCTL_H */
