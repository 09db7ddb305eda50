/* SPDX-License-Identifier: GPL-2.0 */
/* Internal state of the AziHSM driver, shared by its modules. */
#ifndef AZIHSM_H
#define AZIHSM_H

#include <linux/cdev.h>
#include <linux/completion.h>
#include <linux/dmapool.h>
#include <linux/interrupt.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "azihsm_ioctl.h"
#include "azihsm_regs.h"

#define AZIHSM_DRIVER_NAME	"azihsm"
#define AZIHSM_DRIVER_REV	"3.2.0"
#define AZIHSM_ADMIN_TIMEOUT	(30 * HZ)
#define AZIHSM_HEALTH_PERIOD	(6 * HZ)
#define AZIHSM_MIN_ABORT_TIMEOUT_S 6

/* Module parameters (azihsm_main.c) */
extern unsigned int azihsm_num_hsm_slots;
extern unsigned int azihsm_num_aes_slots;
extern unsigned int azihsm_abort_timeout_s;
extern unsigned int azihsm_poll_us;
extern unsigned int azihsm_pf_res_cnt;

enum azihsm_qkind { AZIHSM_Q_ADMIN, AZIHSM_Q_HSM, AZIHSM_Q_AES };

/* One in-flight command; lives on the submitter's stack. */
struct azihsm_cmd {
	struct completion done;
	int result;		/* 0: cqe holds the completion; <0: failed host-side */
	u32 ext_status;		/* AZIHSM_EXT_* when result < 0 */
	u8 cqe[64];
};

/* One submission/completion queue pair. Fields below @lock are protected by it. */
struct azihsm_queue {
	struct azihsm_dev *hsm;
	const struct azihsm_qfmt *fmt;
	enum azihsm_qkind kind;
	u16 qid;
	u16 depth;
	u16 vector;
	void __iomem *sq_db;
	void __iomem *cq_db;
	size_t sq_bytes;
	size_t cq_bytes;
	wait_queue_head_t tag_wait;	/* submitters waiting for a free CID */

	spinlock_t lock;
	bool enabled;		/* accepts submissions; CQ is drained */
	void *sq;
	dma_addr_t sq_dma;
	void *cq;
	dma_addr_t cq_dma;
	u16 sq_tail;
	u16 sq_head;		/* from the last CQE */
	u16 cq_head;
	u8 cq_phase;		/* phase value of a stale entry */
	unsigned long *tags;	/* bitmap of depth-1 CIDs */
	struct azihsm_cmd **inflight;	/* indexed by CID */
};

/* One MSI-X vector: its ISR drains every CQ bound to it. */
struct azihsm_vector {
	struct azihsm_dev *hsm;
	u16 index;
	bool requested;
};

enum azihsm_state {
	AZIHSM_STATE_INIT,	/* probe or level-2 re-initialisation running */
	AZIHSM_STATE_READY,
	AZIHSM_STATE_ABORTING,	/* abort in progress */
	AZIHSM_STATE_DEAD,	/* level-2 failed or device gone: ioctls fail until reload */
	AZIHSM_STATE_REMOVED,
};

struct azihsm_dev {
	struct kref ref;	/* held by the PCI binding and by every open fd */
	struct pci_dev *pdev;
	void __iomem *bar0;
	void __iomem *bar2;
	void __iomem *bar4;
	struct dma_pool *io_pool;	/* 4 KiB bounce pages */

	int nr_vectors;
	struct azihsm_vector vectors[AZIHSM_MAX_VECTORS];

	struct azihsm_queue admin;
	struct mutex admin_lock;	/* one admin command at a time */

	struct azihsm_queue *hsm_q;	/* allocated at first init */
	unsigned int nr_hsm_alloc;
	unsigned int nr_hsm;		/* queues created by the current init */
	struct azihsm_queue *aes_q;
	unsigned int nr_aes_alloc;
	unsigned int nr_aes;

	struct mutex ctrl_lock;		/* serialises init, aborts, resets and remove */
	enum azihsm_state state;	/* written under ctrl_lock, read with READ_ONCE */
	struct rw_semaphore io_rwsem;	/* read: an ioctl using the device; write: remove */
	struct delayed_work health_work;
	unsigned int generation;	/* bumped by every level-2 abort: device sessions are gone */

	/* Identify results */
	u16 ctrl_id;
	char serial[33];
	char fw_rev[33];
	bool gcm_workaround;
	u8 entropy[32];

	int minor;
	struct cdev *cdev;
	struct device *chardev;
};

/* One open /dev/azihsmN: owner process and its (at most one) session. */
struct azihsm_file {
	struct azihsm_dev *hsm;
	pid_t owner;			/* tgid of the opener; other processes get -EACCES */
	struct rw_semaphore session_rwsem;	/* write: OPEN/CLOSE in flight; read: other commands */
	bool session_valid;
	u16 session_id;
	unsigned int session_gen;	/* hsm->generation when the session was opened */
	bool short_app_id_valid;
	u8 short_app_id;
};

/* azihsm_hw.c: register access */
u32 azihsm_csts(struct azihsm_dev *hsm);
bool azihsm_gone(struct azihsm_dev *hsm);
int azihsm_hw_enable(struct azihsm_dev *hsm);
int azihsm_hw_disable(struct azihsm_dev *hsm);
int azihsm_hw_nssr(struct azihsm_dev *hsm);
void azihsm_hw_set_entry_sizes(struct azihsm_dev *hsm);

/* azihsm_queue.c: queue memory, submission, completion */
extern const struct azihsm_qfmt azihsm_fmt_admin;
extern const struct azihsm_qfmt azihsm_fmt_hsm;
extern const struct azihsm_qfmt azihsm_fmt_aes;
int azihsm_queue_setup(struct azihsm_dev *hsm, struct azihsm_queue *q, enum azihsm_qkind kind,
		       u16 qid, u16 depth, u16 vector);
int azihsm_queue_alloc_mem(struct azihsm_queue *q);
void azihsm_queue_free_mem(struct azihsm_queue *q);
void azihsm_queue_teardown(struct azihsm_queue *q);
void azihsm_queue_start(struct azihsm_queue *q);
void azihsm_queue_stop(struct azihsm_queue *q, int result, u32 ext_status);
int azihsm_queue_submit(struct azihsm_queue *q, void *sqe, struct azihsm_cmd *cmd);
bool azihsm_queue_wait(struct azihsm_cmd *cmd, unsigned long timeout);
bool azihsm_queue_outstanding(struct azihsm_queue *q, struct azihsm_cmd *cmd);
void azihsm_queue_cancel(struct azihsm_queue *q, struct azihsm_cmd *cmd, int result, u32 ext_status);
int azihsm_queue_exec(struct azihsm_queue *q, void *sqe, struct azihsm_cmd *cmd,
		      unsigned long timeout);
void azihsm_queue_drain(struct azihsm_queue *q);

/* The queue of @nr queues @qs that CPU @cpu submits on; its vector points at @cpu (azihsm_irq_steer). */
static inline struct azihsm_queue *azihsm_cpu_queue(struct azihsm_queue *qs, unsigned int nr,
						     unsigned int cpu)
{
	return &qs[cpu % nr];
}

/* azihsm_irq.c: MSI-X vectors */
int azihsm_irq_alloc(struct azihsm_dev *hsm);
int azihsm_irq_request(struct azihsm_dev *hsm, u16 index);
void azihsm_irq_steer(struct azihsm_dev *hsm, struct azihsm_queue *qs, unsigned int nr);
void azihsm_irq_free_all(struct azihsm_dev *hsm);

/* azihsm_admin.c: admin commands and the controller init sequence */
int azihsm_admin_exec(struct azihsm_dev *hsm, struct azihsm_admin_sqe *sqe, u32 *dw0);
int azihsm_admin_create_sq(struct azihsm_dev *hsm, struct azihsm_queue *q);
int azihsm_admin_delete_queue(struct azihsm_dev *hsm, u8 opcode, u16 qid);
int azihsm_ctrl_init(struct azihsm_dev *hsm);
void azihsm_ctrl_free_queues(struct azihsm_dev *hsm);
void azihsm_ctrl_delete_io_queues(struct azihsm_dev *hsm);

/* azihsm_abort.c: timeouts, level-1/level-2 aborts, health monitor */
unsigned long azihsm_cmd_timeout(void);
void azihsm_abort_queue(struct azihsm_dev *hsm, struct azihsm_queue *q, struct azihsm_cmd *cmd);
int azihsm_abort_level2(struct azihsm_dev *hsm, bool nssr);
void azihsm_stop_io_queues(struct azihsm_dev *hsm, int result, u32 ext_status);
void azihsm_health_start(struct azihsm_dev *hsm);

/* azihsm_cdev.c: /dev/azihsmN */
int azihsm_cdev_module_init(void);
void azihsm_cdev_module_exit(void);
int azihsm_cdev_add(struct azihsm_dev *hsm);
void azihsm_cdev_remove(struct azihsm_dev *hsm);

/* azihsm_session.c: the generic MBOR command ioctl and session bookkeeping */
long azihsm_ioctl_hsm_cmd(struct azihsm_file *f, void __user *argp);
void azihsm_session_flush(struct azihsm_file *f);
bool azihsm_has_session(struct azihsm_file *f);

/* azihsm_aes.c: the AES fast-path ioctls */
long azihsm_ioctl_aes(struct azihsm_file *f, void __user *argp, unsigned int cmd);

/* azihsm_hsmcmd.c: one HSM or AES queue command */
int azihsm_io_exec(struct azihsm_dev *hsm, enum azihsm_qkind kind, void *sqe, void *cqe,
		   size_t cqe_len, u32 *ext_status);
int azihsm_hsm_exec(struct azihsm_dev *hsm, struct azihsm_hsm_sqe *sqe,
		    struct azihsm_hsm_cqe *cqe, u32 *ext_status);

/* azihsm_main.c */
void azihsm_dev_put(struct azihsm_dev *hsm);

#endif /* AZIHSM_H */
