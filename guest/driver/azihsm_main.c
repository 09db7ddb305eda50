// SPDX-License-Identifier: GPL-2.0
/*
 * PCI driver for the Azure Integrated HSM function 1414:C003: module parameters, probe, remove,
 * shutdown (docs/device.md, "PCI function"; docs/guest-driver.md, "Design").
 */
#include <linux/dma-mapping.h>
#include <linux/module.h>
#include <linux/random.h>
#include <linux/slab.h>

#include "azihsm.h"

unsigned int azihsm_num_hsm_slots = 16;
module_param_named(num_hsm_slots, azihsm_num_hsm_slots, uint, 0444);
MODULE_PARM_DESC(num_hsm_slots, "Entries per HSM queue (2..4096, default 16)");

unsigned int azihsm_num_aes_slots = 16;
module_param_named(num_aes_slots, azihsm_num_aes_slots, uint, 0444);
MODULE_PARM_DESC(num_aes_slots, "Entries per AES queue (2..4096, default 16)");

unsigned int azihsm_abort_timeout_s = AZIHSM_MIN_ABORT_TIMEOUT_S;
module_param_named(abort_timeout_in_sec, azihsm_abort_timeout_s, uint, 0644);
MODULE_PARM_DESC(abort_timeout_in_sec, "HSM command timeout before a level-1 abort (seconds, min 6)");

unsigned int azihsm_poll_us;
module_param_named(poll_us, azihsm_poll_us, uint, 0644);
MODULE_PARM_DESC(poll_us, "Microseconds to spin for a command's completion before sleeping (default 0)");

unsigned int azihsm_pf_res_cnt = 1;
module_param_named(pf_res_cnt, azihsm_pf_res_cnt, uint, 0444);
MODULE_PARM_DESC(pf_res_cnt, "Resource count a PF (SR-IOV capable function) sets at probe (1..64)");

#define AZIHSM_MAX_SLOTS 4096
#define AZIHSM_MAX_RES_CNT 64

static void azihsm_dev_release(struct kref *ref)
{
	struct azihsm_dev *hsm = container_of(ref, struct azihsm_dev, ref);

	pci_dev_put(hsm->pdev);
	kfree(hsm);
}

/* azihsm_dev_put() - drop a reference (PCI binding or open fd) to @hsm. */
void azihsm_dev_put(struct azihsm_dev *hsm)
{
	kref_put(&hsm->ref, azihsm_dev_release);
}

/* Free everything probe acquired; safe on a partially probed device. */
static void azihsm_teardown(struct azihsm_dev *hsm)
{
	struct pci_dev *pdev = hsm->pdev;
	unsigned int i;

	azihsm_irq_free_all(hsm);
	azihsm_ctrl_free_queues(hsm);
	for (i = 0; i < hsm->nr_aes_alloc; i++)
		azihsm_queue_teardown(&hsm->aes_q[i]);
	for (i = 0; i < hsm->nr_hsm_alloc; i++)
		azihsm_queue_teardown(&hsm->hsm_q[i]);
	hsm->nr_aes_alloc = 0;
	hsm->nr_hsm_alloc = 0;
	kfree(hsm->aes_q);
	kfree(hsm->hsm_q);
	hsm->aes_q = NULL;
	hsm->hsm_q = NULL;
	azihsm_queue_teardown(&hsm->admin);
	dma_pool_destroy(hsm->io_pool);
	hsm->io_pool = NULL;
	if (hsm->bar4)
		pci_iounmap(pdev, hsm->bar4);
	if (hsm->bar2)
		pci_iounmap(pdev, hsm->bar2);
	if (hsm->bar0)
		pci_iounmap(pdev, hsm->bar0);
	hsm->bar0 = hsm->bar2 = hsm->bar4 = NULL;
}

static int azihsm_map_bars(struct azihsm_dev *hsm)
{
	struct pci_dev *pdev = hsm->pdev;
	static const int bars[] = { 0, 2, 4 };
	void __iomem **maps[] = { &hsm->bar0, &hsm->bar2, &hsm->bar4 };
	int i;

	for (i = 0; i < ARRAY_SIZE(bars); i++) {
		if (pci_resource_len(pdev, bars[i]) != AZIHSM_BAR_SIZE) {
			dev_err(&pdev->dev, "Invalid BAR%d size %llu (need %u)\n", bars[i],
				(unsigned long long)pci_resource_len(pdev, bars[i]), AZIHSM_BAR_SIZE);
			return -ENOMEM;
		}
		*maps[i] = pci_iomap(pdev, bars[i], AZIHSM_BAR_SIZE);
		if (!*maps[i])
			return -ENOMEM;
	}
	return 0;
}

static int azihsm_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct azihsm_dev *hsm;
	int ret;

	hsm = kzalloc(sizeof(*hsm), GFP_KERNEL);
	if (!hsm)
		return -ENOMEM;
	kref_init(&hsm->ref);
	hsm->pdev = pci_dev_get(pdev);
	mutex_init(&hsm->admin_lock);
	mutex_init(&hsm->ctrl_lock);
	init_rwsem(&hsm->io_rwsem);
	hsm->state = AZIHSM_STATE_INIT;
	get_random_bytes(hsm->entropy, sizeof(hsm->entropy));

	ret = pci_enable_device_mem(pdev);
	if (ret)
		goto err_put;
	ret = pci_request_mem_regions(pdev, AZIHSM_DRIVER_NAME);
	if (ret)
		goto err_disable;
	pci_set_master(pdev);
	ret = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (ret) {
		dev_err(&pdev->dev, "64-bit DMA unavailable\n");
		goto err_regions;
	}
	ret = azihsm_map_bars(hsm);
	if (ret)
		goto err_teardown;
	hsm->io_pool = dma_pool_create("azihsm_hsm_io", &pdev->dev, 4096, 4096, 0);
	if (!hsm->io_pool) {
		ret = -ENOMEM;
		goto err_teardown;
	}
	ret = azihsm_queue_setup(hsm, &hsm->admin, AZIHSM_Q_ADMIN, AZIHSM_ADMIN_QID,
				 AZIHSM_ADMIN_DEPTH, 0);
	if (ret)
		goto err_teardown;
	ret = azihsm_irq_alloc(hsm);
	if (ret)
		goto err_teardown;
	ret = azihsm_irq_request(hsm, 0);
	if (ret)
		goto err_teardown;
	pci_set_drvdata(pdev, hsm);

	mutex_lock(&hsm->ctrl_lock);
	ret = azihsm_ctrl_init(hsm);
	if (ret && !azihsm_gone(hsm))
		azihsm_hw_disable(hsm);
	WRITE_ONCE(hsm->state, ret ? AZIHSM_STATE_DEAD : AZIHSM_STATE_READY);
	mutex_unlock(&hsm->ctrl_lock);
	if (ret)
		goto err_teardown;

	ret = azihsm_cdev_add(hsm);
	if (ret) {
		azihsm_hw_disable(hsm);
		goto err_teardown;
	}
	azihsm_health_start(hsm);
	dev_info(&pdev->dev, "azihsm%d ready (driver %s)\n", hsm->minor, AZIHSM_DRIVER_REV);
	return 0;

err_teardown:
	azihsm_teardown(hsm);
err_regions:
	pci_release_mem_regions(pdev);
err_disable:
	pci_disable_device(pdev);
err_put:
	pci_set_drvdata(pdev, NULL);
	dev_err(&pdev->dev, "probe failed: %d\n", ret);
	azihsm_dev_put(hsm);
	return ret;
}

static void azihsm_remove(struct pci_dev *pdev)
{
	struct azihsm_dev *hsm = pci_get_drvdata(pdev);
	enum azihsm_state prev;
	bool gone;

	azihsm_cdev_remove(hsm);
	cancel_delayed_work_sync(&hsm->health_work);

	/* Fail outstanding commands and refuse new ones, then wait for every ioctl to leave. */
	mutex_lock(&hsm->ctrl_lock);
	prev = hsm->state;
	WRITE_ONCE(hsm->state, AZIHSM_STATE_REMOVED);
	azihsm_stop_io_queues(hsm, -ENODEV, AZIHSM_EXT_NOT_READY);
	mutex_unlock(&hsm->ctrl_lock);
	down_write(&hsm->io_rwsem);
	up_write(&hsm->io_rwsem);

	gone = azihsm_gone(hsm);
	if (gone)
		dev_warn(&pdev->dev, "device surprise-removed; skipping controller shutdown\n");
	mutex_lock(&hsm->ctrl_lock);
	if (!gone && prev == AZIHSM_STATE_READY)
		azihsm_ctrl_delete_io_queues(hsm);
	azihsm_irq_free_all(hsm);
	if (!gone && prev != AZIHSM_STATE_DEAD)
		azihsm_hw_disable(hsm);
	mutex_unlock(&hsm->ctrl_lock);

	azihsm_teardown(hsm);
	pci_release_mem_regions(pdev);
	pci_disable_device(pdev);
	pci_set_drvdata(pdev, NULL);
	dev_info(&pdev->dev, "removed\n");
	azihsm_dev_put(hsm);
}

static void azihsm_shutdown(struct pci_dev *pdev)
{
	struct azihsm_dev *hsm = pci_get_drvdata(pdev);

	if (hsm && !azihsm_gone(hsm))
		azihsm_hw_disable(hsm);
}

static const struct pci_device_id azihsm_ids[] = {
	{ PCI_DEVICE(0x1414, 0xC003) },
	{ }
};
MODULE_DEVICE_TABLE(pci, azihsm_ids);

static struct pci_driver azihsm_pci_driver = {
	.name = AZIHSM_DRIVER_NAME,
	.id_table = azihsm_ids,
	.probe = azihsm_probe,
	.remove = azihsm_remove,
	.shutdown = azihsm_shutdown,
};

static int __init azihsm_init(void)
{
	int ret;

	azihsm_num_hsm_slots = clamp(azihsm_num_hsm_slots, 2u, (unsigned int)AZIHSM_MAX_SLOTS);
	azihsm_num_aes_slots = clamp(azihsm_num_aes_slots, 2u, (unsigned int)AZIHSM_MAX_SLOTS);
	azihsm_pf_res_cnt = clamp(azihsm_pf_res_cnt, 1u, (unsigned int)AZIHSM_MAX_RES_CNT);
	if (azihsm_abort_timeout_s < AZIHSM_MIN_ABORT_TIMEOUT_S) {
		pr_warn("azihsm: abort_timeout_in_sec %u raised to %u\n", azihsm_abort_timeout_s,
			AZIHSM_MIN_ABORT_TIMEOUT_S);
		azihsm_abort_timeout_s = AZIHSM_MIN_ABORT_TIMEOUT_S;
	}
	ret = azihsm_cdev_module_init();
	if (ret)
		return ret;
	ret = pci_register_driver(&azihsm_pci_driver);
	if (ret)
		azihsm_cdev_module_exit();
	return ret;
}

static void __exit azihsm_exit(void)
{
	pci_unregister_driver(&azihsm_pci_driver);
	azihsm_cdev_module_exit();
}

module_init(azihsm_init);
module_exit(azihsm_exit);

MODULE_DESCRIPTION("Azure Integrated HSM (1414:C003) guest driver for the emulated device");
MODULE_LICENSE("GPL");
MODULE_VERSION(AZIHSM_DRIVER_REV);
