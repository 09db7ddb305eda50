// SPDX-License-Identifier: GPL-2.0
/*
 * The AES fast-path ioctls (GCM and XTS): validate the 400-byte request, pin the user's source and
 * destination pages, describe them to the device with NVMe SGLs, move the GCM tail through a small
 * DMA buffer when the tail-buffer workaround is on, run the command on an AES queue (timeout and
 * abort as for HSM commands) and copy the results back (docs/guest-driver.md, "AES fast path"; docs/device.md, "AES queues and the AES path").
 */
#include <linux/dma-mapping.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "azihsm.h"

#define AZIHSM_AES_MAX_LEN	(1u << 20)	/* per direction, as the device (docs/device.md) */
#define AZIHSM_GCM_AAD_ALIGN	32
#define AZIHSM_GCM_DATA_ALIGN	16

static_assert(sizeof(struct azihsm_aes_ioctl) == 400);
static_assert(offsetof(struct azihsm_aes_ioctl, src_len) == 40);
static_assert(offsetof(struct azihsm_aes_ioctl, frame_type) == 64);
static_assert(offsetof(struct azihsm_aes_ioctl, short_app_id) == 68);
static_assert(offsetof(struct azihsm_aes_ioctl, xts.tweak) == 84);
static_assert(offsetof(struct azihsm_aes_ioctl, gcm.enable_gcm_workaround) == 112);
static_assert(offsetof(struct azihsm_aes_ioctl, out_ctxt) == 240);
static_assert(offsetof(struct azihsm_aes_ioctl, out_extended_status) == 272);
static_assert(offsetof(struct azihsm_aes_ioctl, out_iv_from_fw) == 280);

/*
 * Buffers of at most one pool page (both directions) go through bounce pages instead: copying 4 KiB
 * costs less than pinning, mapping and listing the user's pages (docs/guest-driver.md, "Data path").
 */
#define AZIHSM_AES_BOUNCE_MAX	4096	/* the io_pool block size */

/* One user buffer, pinned and DMA-mapped and described by an SGL list, or copied through a bounce page. */
struct azihsm_aes_buf {
	u8 *bounce;		/* pool page standing for the buffer (SQE: one data block), or NULL */
	dma_addr_t bounce_dma;
	struct page **pages;
	unsigned int nr_pages;
	bool pinned;
	bool mapped;
	enum dma_data_direction dir;
	struct sg_table sgt;
	void *list;		/* descriptor list pages (coherent) */
	dma_addr_t list_dma;
	size_t list_bytes;
	struct azihsm_sgl_desc sqe_desc;	/* what the SQE names */
};

static void azihsm_aes_buf_release(struct azihsm_dev *hsm, struct azihsm_aes_buf *b)
{
	struct device *dev = &hsm->pdev->dev;

	if (b->bounce)
		dma_pool_free(hsm->io_pool, b->bounce, b->bounce_dma);
	if (b->list)
		dma_free_coherent(dev, b->list_bytes, b->list, b->list_dma);
	if (b->mapped)
		dma_unmap_sgtable(dev, &b->sgt, b->dir, 0);
	if (b->sgt.sgl)
		sg_free_table(&b->sgt);
	if (b->pinned)
		unpin_user_pages_dirty_lock(b->pages, b->nr_pages, b->dir == DMA_FROM_DEVICE);
	kvfree(b->pages);
	memset(b, 0, sizeof(*b));
}

/*
 * Stand a pool page for the @len (<= AZIHSM_AES_BOUNCE_MAX) bytes at user address @uaddr, named in the
 * SQE as one data block; a source is copied in now, a destination's output is copied out by
 * azihsm_aes_output. Returns 0, -EFAULT (the source cannot be read) or -ENOMEM.
 */
static int azihsm_aes_buf_bounce(struct azihsm_dev *hsm, struct azihsm_aes_buf *b, u64 uaddr, u32 len,
				 enum dma_data_direction dir)
{
	b->dir = dir;
	b->bounce = dma_pool_alloc(hsm->io_pool, GFP_KERNEL, &b->bounce_dma);
	if (!b->bounce)
		return -ENOMEM;
	if (dir == DMA_TO_DEVICE && copy_from_user(b->bounce, u64_to_user_ptr(uaddr), len))
		return -EFAULT;
	b->sqe_desc.addr = cpu_to_le64(b->bounce_dma);
	b->sqe_desc.len = cpu_to_le32(len);
	b->sqe_desc.type = AZIHSM_SGL_DATA_BLOCK;
	return 0;
}

/*
 * Pin @len bytes at user address @uaddr, map them for @dir and build the descriptor list: pages of
 * up to 255 data blocks, slot 255 linking to the next page (a segment of 4096 bytes, or a last
 * segment of the rest). Returns 0, -EFAULT (pages could not be pinned) or -ENOMEM.
 */
static int azihsm_aes_buf_map(struct device *dev, struct azihsm_aes_buf *b, u64 uaddr, u32 len,
			      enum dma_data_direction dir)
{
	unsigned int offset = offset_in_page(uaddr);
	unsigned int nr_desc, nr_list, i, slot, page_idx;
	struct azihsm_sgl_desc *desc;
	struct scatterlist *sg;
	int pinned, ret;

	b->dir = dir;
	b->nr_pages = DIV_ROUND_UP(offset + len, PAGE_SIZE);
	b->pages = kvcalloc(b->nr_pages, sizeof(*b->pages), GFP_KERNEL);
	if (!b->pages)
		return -ENOMEM;
	pinned = pin_user_pages_fast(uaddr & PAGE_MASK, b->nr_pages,
				     dir == DMA_FROM_DEVICE ? FOLL_WRITE : 0, b->pages);
	if (pinned != b->nr_pages) {
		if (pinned > 0)
			unpin_user_pages(b->pages, pinned);
		return -EFAULT;
	}
	b->pinned = true;
	ret = sg_alloc_table_from_pages(&b->sgt, b->pages, b->nr_pages, offset, len, GFP_KERNEL);
	if (ret)
		return -ENOMEM;
	ret = dma_map_sgtable(dev, &b->sgt, dir, 0);
	if (ret)
		return -ENOMEM;
	b->mapped = true;

	nr_desc = b->sgt.nents;
	nr_list = DIV_ROUND_UP(nr_desc, AZIHSM_SGL_PER_PAGE);
	b->list_bytes = (size_t)nr_list * PAGE_SIZE;
	b->list = dma_alloc_coherent(dev, b->list_bytes, &b->list_dma, GFP_KERNEL);
	if (!b->list)
		return -ENOMEM;
	desc = b->list;
	slot = 0;
	page_idx = 0;
	for_each_sgtable_dma_sg(&b->sgt, sg, i) {
		if (slot == AZIHSM_SGL_PER_PAGE) {
			unsigned int rest = nr_desc - i;
			struct azihsm_sgl_desc *link = desc;

			page_idx++;
			link->addr = cpu_to_le64(b->list_dma + (dma_addr_t)page_idx * PAGE_SIZE);
			if (rest > AZIHSM_SGL_PER_PAGE) {
				link->len = cpu_to_le32(PAGE_SIZE);
				link->type = AZIHSM_SGL_SEGMENT;
			} else {
				link->len = cpu_to_le32(rest * sizeof(*link));
				link->type = AZIHSM_SGL_LAST_SEGMENT;
			}
			desc = b->list + (size_t)page_idx * PAGE_SIZE;
			slot = 0;
		}
		desc->addr = cpu_to_le64(sg_dma_address(sg));
		desc->len = cpu_to_le32(sg_dma_len(sg));
		desc->type = AZIHSM_SGL_DATA_BLOCK;
		desc++;
		slot++;
	}
	b->sqe_desc.addr = cpu_to_le64(b->list_dma);
	if (nr_list == 1) {
		b->sqe_desc.len = cpu_to_le32(nr_desc * sizeof(*desc));
		b->sqe_desc.type = AZIHSM_SGL_LAST_SEGMENT;
	} else {
		b->sqe_desc.len = cpu_to_le32(PAGE_SIZE);
		b->sqe_desc.type = AZIHSM_SGL_SEGMENT;
	}
	return 0;
}

static u32 azihsm_aes_validate_xts(const struct azihsm_aes_ioctl *a)
{
	static const u32 units[] = { 0, 512, 4096, 8192 };
	u32 unit;

	if (a->dst_len < a->src_len || a->xts.data_unit_len > AZIHSM_AES_DUL_8192)
		return AZIHSM_AES_EXT_XTS_INVALID;
	unit = a->xts.data_unit_len ? units[a->xts.data_unit_len] : a->src_len;
	if (!unit || a->src_len % unit)
		return AZIHSM_AES_EXT_XTS_INVALID;
	return 0;
}

static u32 azihsm_aes_validate_gcm(const struct azihsm_aes_ioctl *a, bool workaround)
{
	const struct azihsm_aes_gcm_params *g = &a->gcm;

	if (g->actual_aad_len >= a->src_len)
		return AZIHSM_AES_EXT_GCM_INVALID;
	if (workaround && (g->aligned_aad_len < g->actual_aad_len ||
			   g->aligned_aad_len % AZIHSM_GCM_AAD_ALIGN))
		return AZIHSM_AES_EXT_GCM_INVALID;
	if (a->dst_len < a->src_len - g->actual_aad_len)
		return AZIHSM_AES_EXT_GCM_INVALID;
	/* the output tail is written back at dst + (src_len - tail): it must fit */
	if (workaround && a->src_len % AZIHSM_GCM_DATA_ALIGN && a->dst_len < a->src_len)
		return AZIHSM_AES_EXT_GCM_INVALID;
	return 0;
}

/* Request checks in the vendor driver's order; returns the extended status, 0 if acceptable. */
static u32 azihsm_aes_validate(struct azihsm_file *f, const struct azihsm_aes_ioctl *a,
			       unsigned int cmd)
{
	struct azihsm_dev *hsm = f->hsm;
	unsigned int want = cmd == AZIHSM_AES_DEV_IOCTL_CMD_XTS ? AZIHSM_AES_CIPHER_XTS :
								  AZIHSM_AES_CIPHER_GCM;
	u32 ext;

	if (!READ_ONCE(hsm->nr_aes))
		return AZIHSM_AES_EXT_NO_AES_QUEUES;
	if (!azihsm_has_session(f))
		return AZIHSM_AES_EXT_NO_SESSION;
	if (!f->short_app_id_valid)
		return AZIHSM_AES_EXT_NO_SHORT_APP_ID;
	if (a->session_id != f->session_id)
		return AZIHSM_AES_EXT_SESSION_MISMATCH;
	if (a->short_app_id != f->short_app_id)
		return AZIHSM_AES_EXT_SHORT_APP_ID_MISMATCH;
	if (a->op_code > AZIHSM_AES_OP_DECRYPT)
		return AZIHSM_AES_EXT_BAD_OPCODE;
	if (a->cipher != want)
		return AZIHSM_AES_EXT_BAD_CIPHER;
	ext = a->cipher == AZIHSM_AES_CIPHER_XTS ? azihsm_aes_validate_xts(a) :
		azihsm_aes_validate_gcm(a, hsm->gcm_workaround && a->gcm.enable_gcm_workaround);
	if (ext)
		return ext;
	if (a->frame_type != AZIHSM_AES_FRAME_TYPE_AES)
		return AZIHSM_AES_EXT_BAD_FRAME_TYPE;
	if (!a->src_ptr || !a->src_len || !access_ok(u64_to_user_ptr(a->src_ptr), a->src_len))
		return AZIHSM_AES_EXT_BAD_SRC;
	if (!a->dst_ptr || !a->dst_len || !access_ok(u64_to_user_ptr(a->dst_ptr), a->dst_len))
		return AZIHSM_AES_EXT_BAD_DST;
	if (a->src_len > AZIHSM_AES_MAX_LEN)
		return AZIHSM_AES_EXT_SRC_TOO_LONG;
	if (a->dst_len > AZIHSM_AES_MAX_LEN)
		return AZIHSM_AES_EXT_DST_TOO_LONG;
	return 0;
}

/* Check the CQE and fill the out fields (a CQE the device could not have sent is a device error). */
static void azihsm_aes_output(struct azihsm_aes_ioctl *a, const struct azihsm_aes_cqe *cqe,
			      u32 dst_sgl_len, const u8 *dst_bounce, u32 tail, const u8 *tail_buf)
{
	bool gcm = a->cipher == AZIHSM_AES_CIPHER_GCM;
	/* where output starts in the destination (GCM: after the aligned AAD, left untouched) */
	u32 start = gcm ? min(a->gcm.aligned_aad_len, dst_sgl_len) : 0;
	u16 status = AZIHSM_AES_CQE_STATUS(le16_to_cpu(cqe->status));
	u16 err = le16_to_cpu(cqe->err);
	u32 len = le32_to_cpu(cqe->len);
	u32 tail_out = le32_to_cpu(cqe->dst_tail_len);

	a->out_result = status;
	a->out_extended_status = err;
	a->out_fips_approved = !!le32_to_cpu(cqe->fips_approved);
	a->out_byte_count = 0;
	if (status || err)
		return;
	/* the device must stay within what it was given */
	if (len > dst_sgl_len || (tail && (!tail_out || tail_out > tail)) || (!tail && tail_out)) {
		a->out_extended_status = AZIHSM_AES_EXT_DEVICE_ERROR;
		return;
	}
	if (dst_bounce && len > start &&
	    copy_to_user(u64_to_user_ptr(a->dst_ptr + start), dst_bounce + start, len - start)) {
		a->out_extended_status = AZIHSM_AES_EXT_DST_FAULT;
		return;
	}
	if (tail && copy_to_user(u64_to_user_ptr(a->dst_ptr + (a->src_len - tail)), tail_buf, tail)) {
		a->out_extended_status = AZIHSM_AES_EXT_DST_FAULT;
		return;
	}
	a->out_byte_count = len + tail;
	if (gcm && a->op_code == AZIHSM_AES_OP_ENCRYPT) {
		memcpy(a->out_cmd_spec, cqe->cmd_spec, sizeof(a->out_cmd_spec));
		memcpy(a->out_iv_from_fw, cqe->iv, sizeof(a->out_iv_from_fw));
	}
}

/* Map, build the SQE, execute, copy back. Returns 0 if the device answered, else -errno + *ext. */
static int azihsm_aes_run(struct azihsm_dev *hsm, struct azihsm_aes_ioctl *a, u32 *ext)
{
	struct device *dev = &hsm->pdev->dev;
	bool gcm = a->cipher == AZIHSM_AES_CIPHER_GCM;
	struct azihsm_aes_buf src = {}, dst = {};
	struct azihsm_aes_sqe sqe = {};
	struct azihsm_aes_cqe cqe;
	u32 tail = 0, src_len = a->src_len, dst_len = a->dst_len;
	dma_addr_t tail_dma = 0;
	u8 *tail_buf = NULL;
	u16 attr;
	int ret;

	if (gcm && hsm->gcm_workaround && a->gcm.enable_gcm_workaround)
		tail = a->src_len % AZIHSM_GCM_DATA_ALIGN;
	if (tail) {
		tail_buf = dma_pool_zalloc(hsm->io_pool, GFP_KERNEL, &tail_dma);
		if (!tail_buf) {
			*ext = AZIHSM_AES_EXT_NO_MEMORY;
			return -ENOMEM;
		}
		src_len -= tail;
		dst_len -= tail;
		if (copy_from_user(tail_buf, u64_to_user_ptr(a->src_ptr + src_len), tail)) {
			*ext = AZIHSM_AES_EXT_SRC_FAULT;
			ret = -EFAULT;
			goto out;
		}
	}
	/* a command that is all tail carries no SGLs (lengths 0) */
	if (src_len && dst_len) {
		bool bounce = src_len <= AZIHSM_AES_BOUNCE_MAX && dst_len <= AZIHSM_AES_BOUNCE_MAX;

		ret = bounce ? azihsm_aes_buf_bounce(hsm, &src, a->src_ptr, src_len, DMA_TO_DEVICE)
			     : azihsm_aes_buf_map(dev, &src, a->src_ptr, src_len, DMA_TO_DEVICE);
		if (ret) {
			*ext = ret == -EFAULT ? AZIHSM_AES_EXT_SRC_FAULT : AZIHSM_AES_EXT_NO_MEMORY;
			goto out;
		}
		ret = bounce ? azihsm_aes_buf_bounce(hsm, &dst, a->dst_ptr, dst_len, DMA_FROM_DEVICE)
			     : azihsm_aes_buf_map(dev, &dst, a->dst_ptr, dst_len, DMA_FROM_DEVICE);
		if (ret) {
			*ext = ret == -EFAULT ? AZIHSM_AES_EXT_DST_FAULT : AZIHSM_AES_EXT_NO_MEMORY;
			goto out;
		}
		sqe.src_len = cpu_to_le32(src_len);
		sqe.src = src.sqe_desc;
		sqe.dst_len = cpu_to_le32(dst_len);
		sqe.dst = dst.sqe_desc;
	} else {
		src_len = dst_len = 0;
	}

	attr = AZIHSM_AES_ATTR_PSDT_SGL | AZIHSM_AES_ATTR_CMD_AES;
	if (a->op_code == AZIHSM_AES_OP_DECRYPT)
		attr |= AZIHSM_AES_ATTR_DECRYPT;
	if (!gcm)
		attr |= AZIHSM_AES_ATTR_XTS | AZIHSM_AES_ATTR_DUL(a->xts.data_unit_len);
	sqe.attr = cpu_to_le16(attr);
	sqe.session_id = cpu_to_le16(a->session_id);
	sqe.short_app_id = a->short_app_id;
	sqe.frame_type = a->frame_type;
	if (gcm) {
		sqe.gcm.key_id = cpu_to_le32(a->gcm.key_id);
		sqe.gcm.actual_aad_len = cpu_to_le32(a->gcm.actual_aad_len);
		memcpy(sqe.gcm.tag, a->gcm.tag, sizeof(sqe.gcm.tag));
		memcpy(sqe.gcm.iv, a->gcm.iv, sizeof(sqe.gcm.iv));
		sqe.gcm.aligned_aad_len = cpu_to_le32(a->gcm.aligned_aad_len);
		if (tail) {
			sqe.gcm.src_tail_len = tail;
			sqe.gcm.dst_tail_len = tail;
			sqe.gcm.src_tail_addr = cpu_to_le64(tail_dma);
			sqe.gcm.dst_tail_addr = cpu_to_le64(tail_dma);
		}
	} else {
		sqe.xts.key_id1 = cpu_to_le32(a->xts.key_id1);
		sqe.xts.key_id2 = cpu_to_le32(a->xts.key_id2);
		memcpy(sqe.xts.tweak, a->xts.tweak, sizeof(sqe.xts.tweak));
	}

	ret = azihsm_io_exec(hsm, AZIHSM_Q_AES, &sqe, &cqe, sizeof(cqe), ext);
	if (ret)
		goto out;
	/* unmap pinned pages first so the CPU sees what the device wrote before anything is copied */
	if (!dst.bounce) {
		azihsm_aes_buf_release(hsm, &src);
		azihsm_aes_buf_release(hsm, &dst);
	}
	azihsm_aes_output(a, &cqe, dst_len, dst.bounce, tail, tail_buf);
out:
	azihsm_aes_buf_release(hsm, &src);
	azihsm_aes_buf_release(hsm, &dst);
	if (tail_buf)
		dma_pool_free(hsm->io_pool, tail_buf, tail_dma);
	return ret;
}

/*
 * azihsm_ioctl_aes() - AZIHSM_AES_DEV_IOCTL_CMD_XTS / _GCM. Returns 0 if the device answered
 * (out_result / out_extended_status say whether it did the work); -EINVAL with
 * out_extended_status for a refused request; -EAGAIN, -ENODEV, -EFAULT or -ENOMEM with it when
 * the command could not run (aborts and timeouts as for HSM commands).
 */
long azihsm_ioctl_aes(struct azihsm_file *f, void __user *argp, unsigned int cmd)
{
	struct azihsm_dev *hsm = f->hsm;
	struct azihsm_aes_ioctl *a;
	enum azihsm_state state;
	u32 ext = 0;
	long ret;

	a = kmalloc(sizeof(*a), GFP_KERNEL);
	if (!a)
		return -ENOMEM;
	if (copy_from_user(a, argp, sizeof(*a))) {
		ret = -EFAULT;
		goto free;
	}
	if (a->hdr.szioctldata < sizeof(*a)) {
		dev_warn_ratelimited(&hsm->pdev->dev, "AES ioctl: szioctldata %u < %zu\n",
				     a->hdr.szioctldata, sizeof(*a));
		ret = -EINVAL;
		goto free;
	}
	a->out_ctxt = a->ctxt;
	a->out_result = 0;
	memset(a->out_cmd_spec, 0, sizeof(a->out_cmd_spec));
	a->out_byte_count = 0;
	a->out_extended_status = 0;
	a->out_fips_approved = 0;
	memset(a->out_iv_from_fw, 0, sizeof(a->out_iv_from_fw));

	down_read(&f->session_rwsem);
	down_read(&hsm->io_rwsem);
	state = READ_ONCE(hsm->state);
	if (state == AZIHSM_STATE_ABORTING) {
		ext = AZIHSM_EXT_ABORT_IN_PROGRESS;
		ret = -EAGAIN;
	} else if (state != AZIHSM_STATE_READY) {
		ext = AZIHSM_AES_EXT_DEVICE_ERROR;
		ret = state == AZIHSM_STATE_REMOVED ? -ENODEV : -EAGAIN;
	} else {
		ext = azihsm_aes_validate(f, a, cmd);
		if (ext) {
			dev_warn_ratelimited(&hsm->pdev->dev,
					     "AES ioctl rejected: extended status %u\n", ext);
			ret = -EINVAL;
		} else {
			ret = azihsm_aes_run(hsm, a, &ext);
		}
	}
	up_read(&hsm->io_rwsem);
	up_read(&f->session_rwsem);
	if (ret)
		a->out_extended_status = ext;
	if (copy_to_user(argp, a, sizeof(*a)))
		ret = -EFAULT;
free:
	kfree(a);
	return ret;
}
