/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Userspace ABI of /dev/azihsmN (azihsm-device.md section 6). Layouts are fixed for x86-64;
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

/* AES fast path: 400 bytes. This driver answers both AES ioctls with -EOPNOTSUPP. */
struct azihsm_aes_ioctl {
	struct azihsm_ioctl_hdr hdr;
	__u64 ctxt;
	__u8 op_code;
	__u8 cipher;
	__u8 rsvd0[6];
	__u64 src_ptr;
	__u64 src_len;
	__u64 dst_ptr;
	__u64 dst_len;
	__u16 frame_type;
	__u16 session_id;
	__u8 short_app_id;
	__u8 rsvd1[3];
	__u8 cipher_params[44];	/* XTS or GCM parameters (azihsm-device.md 6.3) */
	__u8 rsvd2[124];
	__u64 out_ctxt;
	__u32 out_result;
	__u8 out_cmd_spec[16];
	__u32 out_byte_count;
	__u32 out_extended_status;
	__u32 out_fips_approved;
	__u8 out_iv_from_fw[12];
	__u8 rsvd3[104];
};

#define AZIHSM_CTRL_PATH_GENERIC_IOCTL	_IOWR(AZIHSM_IOCTL_MAGIC, 2, struct azihsm_cp_generic_cmd)
#define AZIHSM_CTRL_PATH_GENERIC_IOCTL_SESSION _IOWR(AZIHSM_IOCTL_MAGIC, 3, struct azihsm_cp_generic_cmd)
#define AZIHSM_GET_DEV_INFO_IOCTL	_IOWR(AZIHSM_IOCTL_MAGIC, 4, struct azihsm_ctrl_dev_info)
#define AZIHSM_IOCTL_RESET_DEVICE	_IOWR(AZIHSM_IOCTL_MAGIC, 6, struct azihsm_reset_device_data)
#define AZIHSM_AES_DEV_IOCTL_CMD_XTS	_IOWR(AZIHSM_IOCTL_MAGIC, 0xB, struct azihsm_aes_ioctl)
#define AZIHSM_AES_DEV_IOCTL_CMD_GCM	_IOWR(AZIHSM_IOCTL_MAGIC, 0xC, struct azihsm_aes_ioctl)

#endif /* AZIHSM_IOCTL_H */
