// SPDX-License-Identifier: GPL-2.0
/*
 * One command on an HSM or AES queue: queue selection, submission, timeout and abort
 * (docs/device.md, "Queue entry formats", "AES queues and the AES path"; docs/guest-driver.md, "Timeouts, aborts, resets").
 */
#include "azihsm.h"

/*
 * azihsm_io_exec() - send @sqe on this CPU's queue of @kind and copy its CQE to @cqe.
 * The caller holds hsm->io_rwsem for reading. A command that does not complete within the command
 * timeout triggers a level-1 abort (then level 2) and fails with -EAGAIN /
 * AZIHSM_EXT_CMD_ABORTED. Returns 0 if the device answered (whatever the CQE status), or a
 * negative errno with the extended status in @ext_status.
 */
int azihsm_io_exec(struct azihsm_dev *hsm, enum azihsm_qkind kind, void *sqe, void *cqe,
		   size_t cqe_len, u32 *ext_status)
{
	enum azihsm_state state = READ_ONCE(hsm->state);
	bool aes = kind == AZIHSM_Q_AES;
	unsigned int nr = aes ? READ_ONCE(hsm->nr_aes) : READ_ONCE(hsm->nr_hsm);
	struct azihsm_queue *q;
	struct azihsm_cmd cmd;
	int ret;

	if (state == AZIHSM_STATE_ABORTING) {
		*ext_status = AZIHSM_EXT_ABORT_IN_PROGRESS;
		return -EAGAIN;
	}
	if (state != AZIHSM_STATE_READY || !nr) {
		*ext_status = AZIHSM_EXT_NOT_READY;
		return state == AZIHSM_STATE_REMOVED ? -ENODEV : -EAGAIN;
	}
	q = azihsm_cpu_queue(aes ? hsm->aes_q : hsm->hsm_q, nr, raw_smp_processor_id());
	ret = azihsm_queue_submit(q, sqe, &cmd);
	if (ret) {
		*ext_status = ret == -EAGAIN ? AZIHSM_EXT_CMD_ABORTED : AZIHSM_EXT_DEVICE_ERROR;
		return ret;
	}
	if (!azihsm_queue_wait(&cmd, azihsm_cmd_timeout())) {
		azihsm_abort_queue(hsm, q, &cmd);
		azihsm_queue_cancel(q, &cmd, -EAGAIN, AZIHSM_EXT_CMD_ABORTED);
	}
	if (cmd.result) {
		*ext_status = cmd.ext_status;
		return cmd.result;
	}
	memcpy(cqe, cmd.cqe, cqe_len);
	return 0;
}

/* azihsm_hsm_exec() - azihsm_io_exec() on an HSM queue. */
int azihsm_hsm_exec(struct azihsm_dev *hsm, struct azihsm_hsm_sqe *sqe,
		    struct azihsm_hsm_cqe *cqe, u32 *ext_status)
{
	return azihsm_io_exec(hsm, AZIHSM_Q_HSM, sqe, cqe, sizeof(*cqe), ext_status);
}
