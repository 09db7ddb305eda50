// SPDX-License-Identifier: GPL-2.0
/*
 * AZIHSM_CTRL_PATH_GENERIC_IOCTL_SESSION: validate the request, keep the fd's single session, bounce
 * the MBOR request/response through 4 KiB DMA pages, and flush the session on close
 * (docs/device.md, "Queue entry formats"; docs/guest-driver.md, "ioctl ABI").
 */
#include <linux/uaccess.h>

#include "azihsm.h"

#define AZIHSM_PAGE 4096u

/* Up to two 4 KiB bounce pages for one direction, pointed to directly by PRP1/PRP2. */
struct azihsm_bounce {
	void *va[2];
	dma_addr_t dma[2];
};

static int azihsm_bounce_alloc(struct azihsm_dev *hsm, struct azihsm_bounce *b, u32 len)
{
	unsigned int i;

	for (i = 0; i < DIV_ROUND_UP(len, AZIHSM_PAGE); i++) {
		/* zeroed, so nothing from an earlier command can reach userspace or the device */
		b->va[i] = dma_pool_zalloc(hsm->io_pool, GFP_KERNEL, &b->dma[i]);
		if (!b->va[i])
			return -ENOMEM;
	}
	return 0;
}

static void azihsm_bounce_free(struct azihsm_dev *hsm, struct azihsm_bounce *b)
{
	unsigned int i;

	for (i = 0; i < 2; i++)
		if (b->va[i])
			dma_pool_free(hsm->io_pool, b->va[i], b->dma[i]);
}

static int azihsm_bounce_from_user(struct azihsm_bounce *b, u64 ubuf, u32 len)
{
	u32 first = min(len, AZIHSM_PAGE);

	if (copy_from_user(b->va[0], u64_to_user_ptr(ubuf), first))
		return -EFAULT;
	if (len > first && copy_from_user(b->va[1], u64_to_user_ptr(ubuf + first), len - first))
		return -EFAULT;
	return 0;
}

static int azihsm_bounce_to_user(struct azihsm_bounce *b, u64 ubuf, u32 len)
{
	u32 first = min(len, AZIHSM_PAGE);

	if (len && copy_to_user(u64_to_user_ptr(ubuf), b->va[0], first))
		return -EFAULT;
	if (len > first && copy_to_user(u64_to_user_ptr(ubuf + first), b->va[1], len - first))
		return -EFAULT;
	return 0;
}

/* True if the fd's recorded session still exists on the device (no level-2 abort since OPEN). */
bool azihsm_has_session(struct azihsm_file *f)
{
	if (f->session_valid && f->session_gen != READ_ONCE(f->hsm->generation)) {
		f->session_valid = false;
		f->short_app_id_valid = false;
	}
	return f->session_valid;
}

/* Buffer and session checks; returns the extended status code, 0 if the request is acceptable. */
static u32 azihsm_validate(struct azihsm_file *f, const struct azihsm_cp_generic_cmd *c)
{
	u8 flags = c->in.session_flags;
	u8 op = flags & AZIHSM_SESSION_OP_MASK;
	bool id_valid = flags & AZIHSM_SESSION_ID_VALID;

	if (c->in.cmdset)
		return AZIHSM_EXT_BAD_CMDSET;
	if (c->in.src_length > AZIHSM_MAX_BUFFER)
		return AZIHSM_EXT_SRC_TOO_LONG;
	if (c->in.dst_length > AZIHSM_MAX_BUFFER)
		return AZIHSM_EXT_DST_TOO_LONG;
	if (!c->in.src_buf != !c->in.src_length)
		return AZIHSM_EXT_BAD_SRC_BUF;
	if (!c->in.dst_buf != !c->in.dst_length)
		return AZIHSM_EXT_BAD_DST_BUF;
	if (flags & ~(AZIHSM_SESSION_OP_MASK | AZIHSM_SESSION_ID_VALID))
		return AZIHSM_EXT_BAD_SESSION_OP;
	switch (op) {
	case AZIHSM_SESSION_OP_NONE:
		return id_valid ? AZIHSM_EXT_BAD_SESSION_OP : 0;
	case AZIHSM_SESSION_OP_OPEN:
		if (id_valid)
			return AZIHSM_EXT_BAD_SESSION_OP;
		return azihsm_has_session(f) ? AZIHSM_EXT_SESSION_LIMIT : 0;
	default:	/* CLOSE, IN_SESSION */
		if (!azihsm_has_session(f))
			return AZIHSM_EXT_NO_SESSION;
		if (!id_valid)
			return AZIHSM_EXT_BAD_SESSION_OP;
		return c->in.session_id == f->session_id ? 0 : AZIHSM_EXT_SESSION_MISMATCH;
	}
}

/* Record what the CQE says about the fd's session (3.7). */
static void azihsm_update_session(struct azihsm_file *f, u8 req_op, const struct azihsm_hsm_cqe *cqe)
{
	struct device *dev = &f->hsm->pdev->dev;
	u8 flags = cqe->session_flags;
	u8 op = flags & AZIHSM_SESSION_OP_MASK;
	u16 status = AZIHSM_CQE_STATUS(le16_to_cpu(cqe->status));

	if (op != req_op) {
		if (!status)
			dev_warn_ratelimited(dev, "CQE session op %u for request op %u ignored\n", op,
					     req_op);
		return;
	}
	if (op == AZIHSM_SESSION_OP_OPEN && !status && (flags & AZIHSM_SESSION_ID_VALID)) {
		f->session_valid = true;
		f->session_id = le16_to_cpu(cqe->session_id);
		f->session_gen = READ_ONCE(f->hsm->generation);
		f->short_app_id_valid = flags & AZIHSM_SESSION_SHORT_APP_ID_VALID;
		f->short_app_id = cqe->short_app_id;
	} else if (op == AZIHSM_SESSION_OP_CLOSE && (flags & AZIHSM_SESSION_ID_VALID) &&
		   (flags & AZIHSM_SESSION_SAFE_TO_CLOSE)) {
		f->session_valid = false;
		f->short_app_id_valid = false;
	}
}

/* Bounce, execute and copy back one validated command; fills c->out. Returns 0 or -errno. */
static int azihsm_run_cmd(struct azihsm_file *f, struct azihsm_cp_generic_cmd *c, u32 *ext)
{
	struct azihsm_dev *hsm = f->hsm;
	struct azihsm_bounce src = {}, dst = {};
	struct azihsm_hsm_sqe sqe = {};
	struct azihsm_hsm_cqe cqe;
	u32 count;
	int ret;

	if (azihsm_bounce_alloc(hsm, &src, c->in.src_length) ||
	    azihsm_bounce_alloc(hsm, &dst, c->in.dst_length)) {
		*ext = AZIHSM_EXT_NO_MEMORY;
		ret = -ENOMEM;
		goto out;
	}
	if (c->in.src_length && azihsm_bounce_from_user(&src, c->in.src_buf, c->in.src_length)) {
		*ext = AZIHSM_EXT_BAD_SRC_BUF;
		ret = -EFAULT;
		goto out;
	}
	sqe.dw0 = cpu_to_le32(c->in.opc & AZIHSM_HSM_OPC_MASK);
	sqe.src_len = cpu_to_le32(c->in.src_length);
	sqe.src_prp1 = cpu_to_le64(src.va[0] ? src.dma[0] : 0);
	sqe.src_prp2 = cpu_to_le64(src.va[1] ? src.dma[1] : 0);
	sqe.dst_len = cpu_to_le32(c->in.dst_length);
	sqe.dst_prp1 = cpu_to_le64(dst.va[0] ? dst.dma[0] : 0);
	sqe.dst_prp2 = cpu_to_le64(dst.va[1] ? dst.dma[1] : 0);
	sqe.session_flags = c->in.session_flags;
	sqe.session_id = cpu_to_le16(c->in.session_id);

	ret = azihsm_hsm_exec(hsm, &sqe, &cqe, ext);
	if (ret)
		goto out;
	azihsm_update_session(f, c->in.session_flags & AZIHSM_SESSION_OP_MASK, &cqe);
	count = min_t(u32, le16_to_cpu(cqe.byte_count), c->in.dst_length);
	c->out.status = AZIHSM_CQE_STATUS(le16_to_cpu(cqe.status));
	c->out.byte_count = count;
	if (azihsm_bounce_to_user(&dst, c->in.dst_buf, count)) {
		*ext = AZIHSM_EXT_BAD_DST_BUF;
		ret = -EFAULT;
	}
out:
	azihsm_bounce_free(hsm, &src);
	azihsm_bounce_free(hsm, &dst);
	return ret;
}

/*
 * azihsm_ioctl_hsm_cmd() - the generic MBOR command ioctl. Returns 0 if the device answered (the
 * CQE status is in out.status); otherwise -errno with out.ioctl_extended_status set.
 */
long azihsm_ioctl_hsm_cmd(struct azihsm_file *f, void __user *argp)
{
	struct azihsm_dev *hsm = f->hsm;
	struct azihsm_cp_generic_cmd c;
	u8 op;
	bool changes_session;
	u32 ext = 0;
	int ret;

	if (copy_from_user(&c, argp, sizeof(c)))
		return -EFAULT;
	if (c.hdr.szioctldata < sizeof(c)) {
		dev_warn_ratelimited(&hsm->pdev->dev, "HSM ioctl: szioctldata %u < %zu\n",
				     c.hdr.szioctldata, sizeof(c));
		return -EINVAL;
	}
	memset(&c.out, 0, sizeof(c.out));
	c.out.ctxt = c.in.ctxt;
	op = c.in.session_flags & AZIHSM_SESSION_OP_MASK;
	changes_session = op == AZIHSM_SESSION_OP_OPEN || op == AZIHSM_SESSION_OP_CLOSE;
	if (changes_session)
		down_write(&f->session_rwsem);
	else
		down_read(&f->session_rwsem);

	ext = azihsm_validate(f, &c);
	if (ext) {
		dev_warn_ratelimited(&hsm->pdev->dev, "HSM ioctl rejected: extended status %u\n", ext);
		ret = ext == AZIHSM_EXT_NO_MEMORY ? -ENOMEM : -EINVAL;
	} else {
		down_read(&hsm->io_rwsem);
		ret = azihsm_run_cmd(f, &c, &ext);
		up_read(&hsm->io_rwsem);
	}

	if (changes_session)
		up_write(&f->session_rwsem);
	else
		up_read(&f->session_rwsem);
	c.out.ioctl_extended_status = ret ? ext : 0;
	if (copy_to_user(argp, &c, sizeof(c)))
		return -EFAULT;
	return ret;
}

/* azihsm_session_flush() - on close, tell the device to drop the fd's open session (opc 1). */
void azihsm_session_flush(struct azihsm_file *f)
{
	struct azihsm_dev *hsm = f->hsm;
	struct azihsm_hsm_sqe sqe = {};
	struct azihsm_hsm_cqe cqe;
	u32 ext;
	int ret;

	if (!azihsm_has_session(f))
		return;
	sqe.dw0 = cpu_to_le32(AZIHSM_HSM_OPC_FLUSH_SESSION);
	sqe.session_flags = AZIHSM_SESSION_OP_CLOSE | AZIHSM_SESSION_ID_VALID;
	sqe.session_id = cpu_to_le16(f->session_id);
	down_read(&hsm->io_rwsem);
	ret = azihsm_hsm_exec(hsm, &sqe, &cqe, &ext);
	up_read(&hsm->io_rwsem);
	if (ret)
		dev_dbg(&hsm->pdev->dev, "flush of session %u: %d (ext %#x)\n", f->session_id, ret,
			ext);
	f->session_valid = false;
}
