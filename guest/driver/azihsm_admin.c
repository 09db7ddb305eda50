// SPDX-License-Identifier: GPL-2.0
/*
 * Admin commands and the controller initialisation sequence run at probe and at level-2 re-init
 * (docs/guest-driver.md, "Design"; docs/device.md, "Admin commands"): Identify,
 * [PF: Set Resource Count], Set Features 0x07, HSM queue pairs,
 * Set Features 0xC1, AES queue pairs, Get Features 0xC2.
 */
#include <linux/dma-mapping.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <asm/unaligned.h>

#include "azihsm.h"

/* Identify controller page offsets */
#define ID_SERIAL	4
#define ID_FW_REV	36
#define ID_CTRL_ID	74
#define ID_CP_SQES	77
#define ID_CP_CQES	78
#define ID_FP_SQES	83
#define ID_FP_CQES	84
#define ID_STR_LEN	32

/*
 * azihsm_admin_exec() - run one admin command synchronously (completion by interrupt, 30 s timeout).
 * Returns 0 and stores CQE DW0 in @dw0 (if not NULL); -EFAULT if the CQE status is nonzero.
 */
int azihsm_admin_exec(struct azihsm_dev *hsm, struct azihsm_admin_sqe *sqe, u32 *dw0)
{
	struct azihsm_admin_cqe *cqe;
	struct azihsm_cmd cmd;
	u16 status;
	int ret;

	mutex_lock(&hsm->admin_lock);
	ret = azihsm_queue_exec(&hsm->admin, sqe, &cmd, AZIHSM_ADMIN_TIMEOUT);
	mutex_unlock(&hsm->admin_lock);
	if (ret) {
		dev_err(&hsm->pdev->dev, "admin opcode %#x failed: %d\n", sqe->opcode, ret);
		return ret;
	}
	cqe = (struct azihsm_admin_cqe *)cmd.cqe;
	status = AZIHSM_CQE_STATUS(le16_to_cpu(cqe->status));
	if (status) {
		dev_err(&hsm->pdev->dev, "admin opcode %#x: status %#x\n", sqe->opcode, status);
		return -EFAULT;
	}
	if (dw0)
		*dw0 = le32_to_cpu(cqe->dw0);
	return 0;
}

static void azihsm_copy_id_string(char *dst, const u8 *src)
{
	memcpy(dst, src, ID_STR_LEN);
	dst[ID_STR_LEN] = '\0';
	strim(dst);
}

static int azihsm_identify(struct azihsm_dev *hsm)
{
	struct device *dev = &hsm->pdev->dev;
	struct azihsm_admin_sqe sqe = { .opcode = AZIHSM_ADM_IDENTIFY };
	dma_addr_t page_dma;
	u8 *page;
	int ret;

	page = dma_alloc_coherent(dev, PAGE_SIZE, &page_dma, GFP_KERNEL);
	if (!page)
		return -ENOMEM;
	sqe.prp1 = cpu_to_le64(page_dma);
	sqe.cdw[0] = cpu_to_le32(AZIHSM_IDENTIFY_CNS_CTRL);
	ret = azihsm_admin_exec(hsm, &sqe, NULL);
	if (ret)
		goto out;
	if ((page[ID_CP_SQES] & 0xf) != 6 || (page[ID_CP_CQES] & 0xf) != 4 ||
	    (page[ID_FP_SQES] & 0xf) != 7 || (page[ID_FP_CQES] & 0xf) != 6) {
		dev_err(dev, "Identify entry sizes %#x/%#x/%#x/%#x, need 6/4/7/6 in the low nibbles\n",
			page[ID_CP_SQES], page[ID_CP_CQES], page[ID_FP_SQES], page[ID_FP_CQES]);
		ret = -EINVAL;
		goto out;
	}
	hsm->ctrl_id = get_unaligned_le16(page + ID_CTRL_ID);
	azihsm_copy_id_string(hsm->serial, page + ID_SERIAL);
	azihsm_copy_id_string(hsm->fw_rev, page + ID_FW_REV);
	dev_info(dev, "controller id %u, serial '%s', firmware '%s'\n", hsm->ctrl_id, hsm->serial,
		 hsm->fw_rev);
out:
	dma_free_coherent(dev, PAGE_SIZE, page, page_dma);
	return ret;
}

/* Set Features queue count: returns min(SQ, CQ) granted (0-based halves, u16 wrap: docs/guest-driver.md, "Design"). */
static int azihsm_set_queue_count(struct azihsm_dev *hsm, u8 fid, unsigned int *count)
{
	struct azihsm_admin_sqe sqe = { .opcode = AZIHSM_ADM_SET_FEATURES };
	u32 dw0;
	int ret;

	sqe.cdw[0] = cpu_to_le32(fid);
	sqe.cdw[1] = cpu_to_le32(AZIHSM_QUEUE_COUNT_REQ);
	ret = azihsm_admin_exec(hsm, &sqe, &dw0);
	if (ret)
		return ret;
	*count = min((u16)((dw0 & 0xffff) + 1), (u16)((dw0 >> 16) + 1));
	return 0;
}

static void azihsm_set_res_cnt(struct azihsm_dev *hsm)
{
	struct azihsm_admin_sqe sqe = { .opcode = AZIHSM_ADM_SET_RES_CNT };

	sqe.cdw[0] = cpu_to_le32(hsm->ctrl_id);
	sqe.cdw[1] = cpu_to_le32(azihsm_pf_res_cnt);
	if (azihsm_admin_exec(hsm, &sqe, NULL))
		dev_warn(&hsm->pdev->dev, "Set Resource Count failed (ignored)\n");
}

static int azihsm_create_cq(struct azihsm_dev *hsm, struct azihsm_queue *q)
{
	struct azihsm_admin_sqe sqe = { .opcode = AZIHSM_ADM_CREATE_CQ };

	sqe.prp1 = cpu_to_le64(q->cq_dma);
	sqe.cdw[0] = cpu_to_le32(q->qid | (u32)(q->depth - 1) << 16);
	sqe.cdw[1] = cpu_to_le32(BIT(0) | BIT(1) | (u32)q->vector << 16);
	return azihsm_admin_exec(hsm, &sqe, NULL);
}

/* azihsm_admin_create_sq() - Create I/O SQ @q on its existing memory, bound to CQ q->qid. */
int azihsm_admin_create_sq(struct azihsm_dev *hsm, struct azihsm_queue *q)
{
	struct azihsm_admin_sqe sqe = { .opcode = AZIHSM_ADM_CREATE_SQ };
	u32 qprio = (q->qid % 2) ? 1 : 3;

	sqe.prp1 = cpu_to_le64(q->sq_dma);
	sqe.cdw[0] = cpu_to_le32(q->qid | (u32)(q->depth - 1) << 16);
	sqe.cdw[1] = cpu_to_le32(BIT(0) | qprio << 1 | (u32)q->qid << 16);
	return azihsm_admin_exec(hsm, &sqe, NULL);
}

/* azihsm_admin_delete_queue() - Delete I/O SQ or CQ (@opcode) @qid. */
int azihsm_admin_delete_queue(struct azihsm_dev *hsm, u8 opcode, u16 qid)
{
	struct azihsm_admin_sqe sqe = { .opcode = opcode };

	sqe.cdw[0] = cpu_to_le32(qid);
	return azihsm_admin_exec(hsm, &sqe, NULL);
}

/* Fresh memory, Create CQ, Create SQ (deleting the CQ if that fails), start. */
static int azihsm_create_io_queue(struct azihsm_dev *hsm, struct azihsm_queue *q)
{
	int ret = azihsm_queue_alloc_mem(q);

	if (ret)
		return ret;
	ret = azihsm_create_cq(hsm, q);
	if (ret)
		return ret;
	ret = azihsm_admin_create_sq(hsm, q);
	if (ret) {
		azihsm_admin_delete_queue(hsm, AZIHSM_ADM_DELETE_CQ, q->qid);
		return ret;
	}
	azihsm_queue_start(q);
	return 0;
}

/*
 * Allocate the host-side queue array of one kind at the first init; later inits reuse it and
 * create at most as many queues as it holds.
 */
static int azihsm_setup_queue_array(struct azihsm_dev *hsm, enum azihsm_qkind kind,
				    unsigned int count)
{
	bool is_hsm = kind == AZIHSM_Q_HSM;
	struct azihsm_queue **arr = is_hsm ? &hsm->hsm_q : &hsm->aes_q;
	unsigned int *nr_alloc = is_hsm ? &hsm->nr_hsm_alloc : &hsm->nr_aes_alloc;
	u16 depth = is_hsm ? azihsm_num_hsm_slots : azihsm_num_aes_slots;
	unsigned int pool, i;
	struct azihsm_queue *qs;
	int ret;

	if (*arr || !count)
		return 0;
	if (is_hsm) {
		pool = min_t(unsigned int, (hsm->nr_vectors - 1) / 2, count);
	} else {
		pool = min_t(unsigned int, hsm->nr_vectors / 2, count);
		if (AZIHSM_AES_VECTOR_BASE + pool > hsm->nr_vectors) {
			dev_err(&hsm->pdev->dev, "%u AES queues need %u MSI-X vectors, %d granted\n",
				count, AZIHSM_AES_VECTOR_BASE + pool, hsm->nr_vectors);
			return -ENOSPC;
		}
	}
	qs = kcalloc(count, sizeof(*qs), GFP_KERNEL);
	if (!qs)
		return -ENOMEM;
	for (i = 0; i < count; i++) {
		u16 vector = is_hsm ? 1 + i % pool : AZIHSM_AES_VECTOR_BASE + i % pool;
		u16 qid = is_hsm ? AZIHSM_HSM_QID_BASE + i : AZIHSM_AES_QID_BASE + i;

		ret = azihsm_queue_setup(hsm, &qs[i], kind, qid, depth, vector);
		if (!ret)
			ret = azihsm_irq_request(hsm, vector);
		if (ret) {
			while (i--)
				azihsm_queue_teardown(&qs[i]);
			kfree(qs);
			return ret;
		}
	}
	*arr = qs;
	smp_store_release(nr_alloc, count);
	return 0;
}

static int azihsm_create_io_queues(struct azihsm_dev *hsm, enum azihsm_qkind kind, u8 fid,
				   unsigned int max)
{
	bool is_hsm = kind == AZIHSM_Q_HSM;
	unsigned int count, i;
	int ret;

	ret = azihsm_set_queue_count(hsm, fid, &count);
	if (ret)
		return ret;
	if (count > max) {
		dev_warn(&hsm->pdev->dev, "device offers %u queues of FID %#x, using %u\n", count,
			 fid, max);
		count = max;
	}
	ret = azihsm_setup_queue_array(hsm, kind, count);
	if (ret)
		return ret;
	count = min(count, is_hsm ? hsm->nr_hsm_alloc : hsm->nr_aes_alloc);
	for (i = 0; i < count; i++) {
		ret = azihsm_create_io_queue(hsm, is_hsm ? &hsm->hsm_q[i] : &hsm->aes_q[i]);
		if (ret)
			return ret;
		if (is_hsm)
			hsm->nr_hsm = i + 1;
		else
			hsm->nr_aes = i + 1;
	}
	azihsm_irq_steer(hsm, is_hsm ? hsm->hsm_q : hsm->aes_q, is_hsm ? hsm->nr_hsm : hsm->nr_aes);
	return 0;
}

static bool azihsm_gcm_workaround(struct azihsm_dev *hsm)
{
	struct azihsm_admin_sqe sqe = { .opcode = AZIHSM_ADM_GET_FEATURES };
	u32 dw0;

	sqe.cdw[0] = cpu_to_le32(AZIHSM_FID_FW_CAPS);
	return !azihsm_admin_exec(hsm, &sqe, &dw0) && (dw0 & BIT(0));
}

/*
 * azihsm_ctrl_init() - the full bring-up sequence with fresh admin and I/O queue memory.
 * On failure the caller stops the controller and frees the queues (azihsm_ctrl_free_queues()).
 */
int azihsm_ctrl_init(struct azihsm_dev *hsm)
{
	int ret;

	hsm->nr_hsm = 0;
	hsm->nr_aes = 0;
	ret = azihsm_queue_alloc_mem(&hsm->admin);
	if (ret)
		return ret;
	ret = azihsm_hw_enable(hsm);
	if (ret)
		return ret;
	azihsm_queue_start(&hsm->admin);
	ret = azihsm_identify(hsm);
	if (ret)
		return ret;
	if (pci_find_ext_capability(hsm->pdev, PCI_EXT_CAP_ID_SRIOV))
		azihsm_set_res_cnt(hsm);
	azihsm_hw_set_entry_sizes(hsm);
	ret = azihsm_create_io_queues(hsm, AZIHSM_Q_HSM, AZIHSM_FID_HSM_QUEUES,
				      AZIHSM_HSM_MAX_QUEUES);
	if (ret)
		return ret;
	if (!hsm->nr_hsm) {
		dev_err(&hsm->pdev->dev, "device granted no HSM queues\n");
		return -ENODEV;
	}
	ret = azihsm_create_io_queues(hsm, AZIHSM_Q_AES, AZIHSM_FID_AES_QUEUES,
				      AZIHSM_AES_MAX_QUEUES);
	if (ret)
		return ret;
	hsm->gcm_workaround = azihsm_gcm_workaround(hsm);
	dev_info(&hsm->pdev->dev, "%u HSM queues x %u slots, %u AES queues x %u slots, %d vectors\n",
		 hsm->nr_hsm, azihsm_num_hsm_slots, hsm->nr_aes, azihsm_num_aes_slots,
		 hsm->nr_vectors);
	return 0;
}

/* azihsm_ctrl_free_queues() - stop every queue host-side and free its memory (no admin commands). */
void azihsm_ctrl_free_queues(struct azihsm_dev *hsm)
{
	unsigned int i;

	azihsm_stop_io_queues(hsm, -ENODEV, AZIHSM_EXT_NOT_READY);
	for (i = 0; i < hsm->nr_aes_alloc; i++)
		azihsm_queue_free_mem(&hsm->aes_q[i]);
	for (i = 0; i < hsm->nr_hsm_alloc; i++)
		azihsm_queue_free_mem(&hsm->hsm_q[i]);
	azihsm_queue_stop(&hsm->admin, -ENODEV, AZIHSM_EXT_NOT_READY);
	azihsm_queue_free_mem(&hsm->admin);
	hsm->nr_hsm = 0;
	hsm->nr_aes = 0;
}

/* azihsm_ctrl_delete_io_queues() - Delete SQ then CQ for every AES, then HSM queue (results ignored). */
void azihsm_ctrl_delete_io_queues(struct azihsm_dev *hsm)
{
	unsigned int i;

	for (i = 0; i < hsm->nr_aes; i++) {
		azihsm_admin_delete_queue(hsm, AZIHSM_ADM_DELETE_SQ, hsm->aes_q[i].qid);
		azihsm_admin_delete_queue(hsm, AZIHSM_ADM_DELETE_CQ, hsm->aes_q[i].qid);
	}
	for (i = 0; i < hsm->nr_hsm; i++) {
		azihsm_admin_delete_queue(hsm, AZIHSM_ADM_DELETE_SQ, hsm->hsm_q[i].qid);
		azihsm_admin_delete_queue(hsm, AZIHSM_ADM_DELETE_CQ, hsm->hsm_q[i].qid);
	}
}
