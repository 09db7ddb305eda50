// SPDX-License-Identifier: GPL-2.0
/*
 * Queue pairs: coherent SQ/CQ memory, CID tags, submission with the SQ doorbell, and CQ draining with
 * phase tags and SQ-head tracking (docs/device.md, "Queue entry formats"; docs/guest-driver.md, "Design").
 */
#include <linux/bitmap.h>
#include <linux/dma-mapping.h>
#include <linux/ktime.h>
#include <linux/slab.h>
#include <asm/unaligned.h>

#include "azihsm.h"

const struct azihsm_qfmt azihsm_fmt_admin = {
	.sqe_size = 64, .cqe_size = 16,
	.sqe_cid_off = 2, .cqe_cid_off = 12, .cqe_sqhd_off = 8, .cqe_status_off = 14,
};

const struct azihsm_qfmt azihsm_fmt_hsm = {
	.sqe_size = 64, .cqe_size = 16,
	.sqe_cid_off = 2, .cqe_cid_off = 12, .cqe_sqhd_off = 8, .cqe_status_off = 14,
};

const struct azihsm_qfmt azihsm_fmt_aes = {
	.sqe_size = 128, .cqe_size = 64,
	.sqe_cid_off = 6, .cqe_cid_off = 2, .cqe_sqhd_off = 56, .cqe_status_off = 62,
};

static const struct azihsm_qfmt *azihsm_fmt_of(enum azihsm_qkind kind)
{
	switch (kind) {
	case AZIHSM_Q_ADMIN:
		return &azihsm_fmt_admin;
	case AZIHSM_Q_HSM:
		return &azihsm_fmt_hsm;
	default:
		return &azihsm_fmt_aes;
	}
}

/*
 * azihsm_queue_setup() - initialise the host-side bookkeeping of a queue (no DMA memory yet).
 * Tags 0..depth-2 are the CIDs; at most depth-1 commands are ever outstanding.
 */
int azihsm_queue_setup(struct azihsm_dev *hsm, struct azihsm_queue *q, enum azihsm_qkind kind,
		       u16 qid, u16 depth, u16 vector)
{
	q->hsm = hsm;
	q->kind = kind;
	q->fmt = azihsm_fmt_of(kind);
	q->qid = qid;
	q->depth = depth;
	q->vector = vector;
	q->sq_db = hsm->bar2 + AZIHSM_SQ_DB(qid);
	q->cq_db = hsm->bar2 + AZIHSM_CQ_DB(qid);
	q->sq_bytes = round_up((size_t)depth * q->fmt->sqe_size, PAGE_SIZE);
	q->cq_bytes = round_up((size_t)depth * q->fmt->cqe_size, PAGE_SIZE);
	spin_lock_init(&q->lock);
	init_waitqueue_head(&q->tag_wait);
	q->enabled = false;
	q->tags = bitmap_zalloc(depth - 1, GFP_KERNEL);
	q->inflight = kcalloc(depth - 1, sizeof(*q->inflight), GFP_KERNEL);
	if (!q->tags || !q->inflight) {
		azihsm_queue_teardown(q);
		return -ENOMEM;
	}
	return 0;
}

/* azihsm_queue_teardown() - free bookkeeping and DMA memory; the queue must be stopped. */
void azihsm_queue_teardown(struct azihsm_queue *q)
{
	azihsm_queue_free_mem(q);
	bitmap_free(q->tags);
	kfree(q->inflight);
	q->tags = NULL;
	q->inflight = NULL;
}

/* azihsm_queue_alloc_mem() - allocate fresh zeroed SQ and CQ memory and reset the indexes. */
int azihsm_queue_alloc_mem(struct azihsm_queue *q)
{
	struct device *dev = &q->hsm->pdev->dev;
	void *sq, *cq;
	dma_addr_t sq_dma, cq_dma;
	unsigned long flags;

	sq = dma_alloc_coherent(dev, q->sq_bytes, &sq_dma, GFP_KERNEL);
	cq = dma_alloc_coherent(dev, q->cq_bytes, &cq_dma, GFP_KERNEL);
	if (!sq || !cq) {
		if (sq)
			dma_free_coherent(dev, q->sq_bytes, sq, sq_dma);
		if (cq)
			dma_free_coherent(dev, q->cq_bytes, cq, cq_dma);
		return -ENOMEM;
	}
	spin_lock_irqsave(&q->lock, flags);
	q->sq = sq;
	q->sq_dma = sq_dma;
	q->cq = cq;
	q->cq_dma = cq_dma;
	q->sq_tail = 0;
	q->sq_head = 0;
	q->cq_head = 0;
	q->cq_phase = 0;
	spin_unlock_irqrestore(&q->lock, flags);
	return 0;
}

/* azihsm_queue_free_mem() - free SQ/CQ memory; the queue must be stopped. */
void azihsm_queue_free_mem(struct azihsm_queue *q)
{
	struct device *dev;
	void *sq, *cq;
	unsigned long flags;

	if (!q->hsm)	/* never set up */
		return;
	dev = &q->hsm->pdev->dev;
	spin_lock_irqsave(&q->lock, flags);
	sq = q->sq;
	cq = q->cq;
	q->sq = NULL;
	q->cq = NULL;
	spin_unlock_irqrestore(&q->lock, flags);
	if (sq)
		dma_free_coherent(dev, q->sq_bytes, sq, q->sq_dma);
	if (cq)
		dma_free_coherent(dev, q->cq_bytes, cq, q->cq_dma);
}

/* azihsm_queue_start() - accept submissions from SQ slot 0 (after Create SQ). */
void azihsm_queue_start(struct azihsm_queue *q)
{
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	q->sq_tail = 0;
	q->sq_head = 0;
	q->enabled = true;
	spin_unlock_irqrestore(&q->lock, flags);
	wake_up_all(&q->tag_wait);
}

/* Finish the command holding @cid without a CQE and free its tag; caller holds q->lock. */
static void azihsm_finish_host_side(struct azihsm_queue *q, u16 cid, int result, u32 ext_status)
{
	struct azihsm_cmd *cmd = q->inflight[cid];

	q->inflight[cid] = NULL;
	clear_bit(cid, q->tags);
	cmd->result = result;
	cmd->ext_status = ext_status;
	complete(&cmd->done);
}

/*
 * azihsm_queue_stop() - stop accepting submissions and fail every outstanding command with
 * @result / @ext_status. Late CQEs for them are consumed and dropped by CID lookup.
 */
void azihsm_queue_stop(struct azihsm_queue *q, int result, u32 ext_status)
{
	unsigned long flags;
	u16 cid;

	if (!q->hsm)	/* never set up */
		return;
	spin_lock_irqsave(&q->lock, flags);
	q->enabled = false;
	for (cid = 0; q->inflight && cid < q->depth - 1; cid++)
		if (q->inflight[cid])
			azihsm_finish_host_side(q, cid, result, ext_status);
	spin_unlock_irqrestore(&q->lock, flags);
	wake_up_all(&q->tag_wait);
}

/* Take a free CID under q->lock; -EAGAIN if the queue is stopped, -EBUSY if all are in use. */
static int azihsm_tag_get(struct azihsm_queue *q)
{
	unsigned long cid;

	if (!q->enabled)
		return -EAGAIN;
	cid = find_first_zero_bit(q->tags, q->depth - 1);
	if (cid >= q->depth - 1 || q->sq_head == (q->sq_tail + 1) % q->depth)
		return -EBUSY;
	set_bit(cid, q->tags);
	return cid;
}

static bool azihsm_tag_ready(struct azihsm_queue *q)
{
	unsigned long flags;
	bool ready;

	spin_lock_irqsave(&q->lock, flags);
	ready = !q->enabled || (!bitmap_full(q->tags, q->depth - 1) &&
				q->sq_head != (q->sq_tail + 1) % q->depth);
	spin_unlock_irqrestore(&q->lock, flags);
	return ready;
}

/*
 * azihsm_queue_submit() - copy @sqe into the SQ with a fresh CID and ring the doorbell.
 * Waits up to the command timeout for a free CID. On success @cmd is in flight and must be
 * waited for with azihsm_queue_wait(). Returns -EAGAIN if the queue is stopped, -EBUSY if no CID
 * became free in time.
 */
int azihsm_queue_submit(struct azihsm_queue *q, void *sqe, struct azihsm_cmd *cmd)
{
	unsigned long flags;
	int cid;

	init_completion(&cmd->done);
	cmd->result = 0;
	cmd->ext_status = 0;
	for (;;) {
		spin_lock_irqsave(&q->lock, flags);
		cid = azihsm_tag_get(q);
		if (cid >= 0)
			break;
		spin_unlock_irqrestore(&q->lock, flags);
		if (cid == -EAGAIN)
			return cid;
		if (!wait_event_timeout(q->tag_wait, azihsm_tag_ready(q), azihsm_cmd_timeout()))
			return -EBUSY;
	}
	put_unaligned_le16(cid, (u8 *)sqe + q->fmt->sqe_cid_off);
	q->inflight[cid] = cmd;
	memcpy(q->sq + (size_t)q->sq_tail * q->fmt->sqe_size, sqe, q->fmt->sqe_size);
	q->sq_tail = (q->sq_tail + 1) % q->depth;
	/* writel orders the SQE stores before the doorbell */
	writel(q->sq_tail, q->sq_db);
	spin_unlock_irqrestore(&q->lock, flags);
	return 0;
}

/*
 * azihsm_queue_wait() - wait up to @timeout for @cmd; true if it finished (see cmd->result).
 * With the poll_us parameter set, first spin up to that long, interrupts enabled
 * (docs/guest-driver.md, "Polling"): the vector's ISR completes @cmd as usual, but this vCPU
 * is not halted and the task is not put to sleep and woken again.
 */
bool azihsm_queue_wait(struct azihsm_cmd *cmd, unsigned long timeout)
{
	u64 until = ktime_get_ns() + (u64)READ_ONCE(azihsm_poll_us) * NSEC_PER_USEC;

	while (!completion_done(&cmd->done) && ktime_get_ns() < until)
		cpu_relax();
	return wait_for_completion_timeout(&cmd->done, timeout) != 0;
}

/* azihsm_queue_outstanding() - true if @cmd is still waiting for its CQE on @q. */
bool azihsm_queue_outstanding(struct azihsm_queue *q, struct azihsm_cmd *cmd)
{
	unsigned long flags;
	bool found = false;
	u16 cid;

	spin_lock_irqsave(&q->lock, flags);
	for (cid = 0; cid < q->depth - 1; cid++)
		found |= q->inflight[cid] == cmd;
	spin_unlock_irqrestore(&q->lock, flags);
	return found;
}

/*
 * azihsm_queue_cancel() - finish @cmd host-side with @result / @ext_status if it is still
 * outstanding, then wait until it is finished. Its CQE, if it arrives later, is dropped as an
 * unknown CID. Afterwards @cmd may go out of scope.
 */
void azihsm_queue_cancel(struct azihsm_queue *q, struct azihsm_cmd *cmd, int result, u32 ext_status)
{
	unsigned long flags;
	u16 cid;

	spin_lock_irqsave(&q->lock, flags);
	for (cid = 0; cid < q->depth - 1; cid++)
		if (q->inflight[cid] == cmd)
			azihsm_finish_host_side(q, cid, result, ext_status);
	spin_unlock_irqrestore(&q->lock, flags);
	wake_up_all(&q->tag_wait);
	wait_for_completion(&cmd->done);
}

/*
 * azihsm_queue_exec() - submit and wait up to @timeout; on timeout withdraw the command and return
 * -ETIMEDOUT. Used for the admin queue, whose timeouts do not trigger aborts.
 */
int azihsm_queue_exec(struct azihsm_queue *q, void *sqe, struct azihsm_cmd *cmd,
		      unsigned long timeout)
{
	int ret = azihsm_queue_submit(q, sqe, cmd);

	if (ret)
		return ret;
	if (!azihsm_queue_wait(cmd, timeout))
		azihsm_queue_cancel(q, cmd, -ETIMEDOUT, AZIHSM_EXT_DEVICE_ERROR);
	return cmd->result;
}

/*
 * azihsm_queue_drain() - consume every new CQE: match it to its command by CID, record the SQ head,
 * advance the head (toggling the phase on wrap) and ring the CQ head doorbell. Called from the
 * vector's ISR.
 */
void azihsm_queue_drain(struct azihsm_queue *q)
{
	const struct azihsm_qfmt *fmt = q->fmt;
	unsigned long flags;
	bool consumed = false;

	spin_lock_irqsave(&q->lock, flags);
	while (q->cq) {
		u8 *cqe = q->cq + (size_t)q->cq_head * fmt->cqe_size;
		u16 status = le16_to_cpu(READ_ONCE(*(__le16 *)(cqe + fmt->cqe_status_off)));
		struct azihsm_cmd *cmd = NULL;
		u16 cid;

		if ((status & 1) == q->cq_phase)
			break;
		dma_rmb();	/* read the entry only after seeing its phase */
		cid = get_unaligned_le16(cqe + fmt->cqe_cid_off);
		q->sq_head = get_unaligned_le16(cqe + fmt->cqe_sqhd_off) % q->depth;
		if (cid < q->depth - 1)
			cmd = q->inflight[cid];
		if (cmd) {
			memcpy(cmd->cqe, cqe, fmt->cqe_size);
			q->inflight[cid] = NULL;
			clear_bit(cid, q->tags);
			cmd->result = 0;
			complete(&cmd->done);
		} else {
			dev_warn_ratelimited(&q->hsm->pdev->dev,
					     "queue %u: dropped CQE with unknown CID %u\n", q->qid, cid);
		}
		if (++q->cq_head == q->depth) {
			q->cq_head = 0;
			q->cq_phase ^= 1;
		}
		writel(q->cq_head, q->cq_db);
		consumed = true;
	}
	spin_unlock_irqrestore(&q->lock, flags);
	if (consumed)
		wake_up_all(&q->tag_wait);
}
