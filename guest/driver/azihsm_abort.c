// SPDX-License-Identifier: GPL-2.0
/*
 * Command timeouts, level-1 abort (delete and recreate one SQ), level-2 abort (controller reset and
 * full re-initialisation with new queue memory) and the CSTS health monitor
 * (docs/guest-driver.md, "Timeouts, aborts, resets").
 */
#include "azihsm.h"

/* azihsm_cmd_timeout() - HSM command timeout in jiffies: abort_timeout_in_sec, at least 6 s. */
unsigned long azihsm_cmd_timeout(void)
{
	return max_t(unsigned int, azihsm_abort_timeout_s, AZIHSM_MIN_ABORT_TIMEOUT_S) * HZ;
}

/* azihsm_stop_io_queues() - stop every HSM and AES queue, failing outstanding commands. */
void azihsm_stop_io_queues(struct azihsm_dev *hsm, int result, u32 ext_status)
{
	unsigned int i;

	for (i = 0; i < hsm->nr_hsm_alloc; i++)
		azihsm_queue_stop(&hsm->hsm_q[i], result, ext_status);
	for (i = 0; i < hsm->nr_aes_alloc; i++)
		azihsm_queue_stop(&hsm->aes_q[i], result, ext_status);
}

/* Level 1: fail the queue's commands, Delete SQ, Create SQ on the same memory, restart at slot 0. */
static int azihsm_abort_level1(struct azihsm_dev *hsm, struct azihsm_queue *q)
{
	u32 csts;
	int ret;

	azihsm_queue_stop(q, -EAGAIN, AZIHSM_EXT_CMD_ABORTED);
	csts = azihsm_csts(hsm);
	if (csts == AZIHSM_CSTS_GONE || (csts & AZIHSM_CSTS_CFS))
		return -EIO;
	ret = azihsm_admin_delete_queue(hsm, AZIHSM_ADM_DELETE_SQ, q->qid);
	if (ret)
		return ret;
	ret = azihsm_admin_create_sq(hsm, q);
	if (ret)
		return ret;
	azihsm_queue_start(q);
	return 0;
}

/* Level 2 with ctrl_lock held. */
static int azihsm_abort_level2_locked(struct azihsm_dev *hsm, bool nssr)
{
	struct device *dev = &hsm->pdev->dev;
	int ret;

	if (hsm->state == AZIHSM_STATE_REMOVED)
		return -ENODEV;
	WRITE_ONCE(hsm->state, AZIHSM_STATE_ABORTING);
	dev_warn(dev, "level-2 abort (%s)\n", nssr ? "NSSR" : "CC.EN toggle");
	azihsm_stop_io_queues(hsm, -EAGAIN, AZIHSM_EXT_CMD_ABORTED);
	azihsm_queue_stop(&hsm->admin, -EAGAIN, AZIHSM_EXT_CMD_ABORTED);
	if (nssr && azihsm_hw_nssr(hsm))
		dev_warn(dev, "NSSR: RDY did not clear\n");
	ret = azihsm_hw_disable(hsm);
	if (ret)
		dev_warn(dev, "disable before re-init: %d\n", ret);
	azihsm_ctrl_free_queues(hsm);
	hsm->generation++;
	ret = azihsm_ctrl_init(hsm);
	if (ret) {
		dev_err(dev, "level-2 re-initialisation failed (%d); device unusable until reload\n",
			ret);
		if (!azihsm_gone(hsm))
			azihsm_hw_disable(hsm);
		azihsm_ctrl_free_queues(hsm);
		WRITE_ONCE(hsm->state, AZIHSM_STATE_DEAD);
		return ret;
	}
	WRITE_ONCE(hsm->state, AZIHSM_STATE_READY);
	dev_info(dev, "level-2 abort complete\n");
	return 0;
}

/*
 * azihsm_abort_level2() - application- or monitor-requested controller reset (NSSR if @nssr, else a
 * CC.EN toggle) followed by the full init sequence. Returns -EBUSY if an abort is already running.
 */
int azihsm_abort_level2(struct azihsm_dev *hsm, bool nssr)
{
	int ret;

	if (!mutex_trylock(&hsm->ctrl_lock))
		return -EBUSY;
	if (hsm->state == AZIHSM_STATE_READY)
		ret = azihsm_abort_level2_locked(hsm, nssr);
	else
		ret = hsm->state == AZIHSM_STATE_ABORTING ? -EBUSY : -ENODEV;
	mutex_unlock(&hsm->ctrl_lock);
	return ret;
}

/*
 * azihsm_abort_queue() - @cmd on @q timed out: level-1 abort of @q, then level 2 if that fails.
 * Does nothing if @cmd finished meanwhile or another abort already dealt with it. Afterwards every
 * command that was outstanding on @q has been failed with -EAGAIN / AZIHSM_EXT_CMD_ABORTED.
 */
void azihsm_abort_queue(struct azihsm_dev *hsm, struct azihsm_queue *q, struct azihsm_cmd *cmd)
{
	struct device *dev = &hsm->pdev->dev;
	int ret;

	mutex_lock(&hsm->ctrl_lock);
	if (hsm->state != AZIHSM_STATE_READY || !azihsm_queue_outstanding(q, cmd))
		goto out;
	dev_warn(dev, "command on queue %u timed out after %lu s: level-1 abort\n", q->qid,
		 azihsm_cmd_timeout() / HZ);
	WRITE_ONCE(hsm->state, AZIHSM_STATE_ABORTING);
	ret = azihsm_abort_level1(hsm, q);
	if (ret) {
		dev_warn(dev, "level-1 abort of queue %u failed (%d)\n", q->qid, ret);
		azihsm_abort_level2_locked(hsm, false);
	} else {
		WRITE_ONCE(hsm->state, AZIHSM_STATE_READY);
		dev_info(dev, "level-1 abort of queue %u complete\n", q->qid);
	}
out:
	mutex_unlock(&hsm->ctrl_lock);
}

static void azihsm_health_check(struct work_struct *work)
{
	struct azihsm_dev *hsm = container_of(to_delayed_work(work), struct azihsm_dev, health_work);
	u32 csts;

	mutex_lock(&hsm->ctrl_lock);
	csts = azihsm_csts(hsm);
	if (hsm->state == AZIHSM_STATE_READY && csts == AZIHSM_CSTS_GONE) {
		dev_warn(&hsm->pdev->dev, "health monitor: device not responding\n");
	} else if (hsm->state == AZIHSM_STATE_READY && (csts & AZIHSM_CSTS_CFS)) {
		dev_err(&hsm->pdev->dev, "health monitor: CSTS.CFS set, crash recovery\n");
		azihsm_abort_level2_locked(hsm, false);
	}
	mutex_unlock(&hsm->ctrl_lock);
	schedule_delayed_work(&hsm->health_work, AZIHSM_HEALTH_PERIOD);
}

/* azihsm_health_start() - read CSTS every 6 s until cancel_delayed_work_sync() at remove. */
void azihsm_health_start(struct azihsm_dev *hsm)
{
	INIT_DELAYED_WORK(&hsm->health_work, azihsm_health_check);
	schedule_delayed_work(&hsm->health_work, AZIHSM_HEALTH_PERIOD);
}
