// SPDX-License-Identifier: GPL-2.0
/* BAR0 register sequences: ready poll, enable, disable, NSSR (docs/guest-driver.md, "Design"). */
#include <linux/io-64-nonatomic-lo-hi.h>
#include <linux/jiffies.h>

#include "azihsm.h"

/* azihsm_csts() - read CSTS; AZIHSM_CSTS_GONE means the device is no longer there. */
u32 azihsm_csts(struct azihsm_dev *hsm)
{
	return readl(hsm->bar0 + AZIHSM_REG_CSTS);
}

/* azihsm_gone() - true if the function has been surprise-removed (config or MMIO reads all ones). */
bool azihsm_gone(struct azihsm_dev *hsm)
{
	return !pci_device_is_present(hsm->pdev) || azihsm_csts(hsm) == AZIHSM_CSTS_GONE;
}

/* Busy-poll CSTS.RDY until it equals @ready, bounded by (CAP.TO + 1) * 500 ms. */
static int azihsm_wait_ready(struct azihsm_dev *hsm, bool ready)
{
	u64 cap = readq(hsm->bar0 + AZIHSM_REG_CAP);
	unsigned long deadline = jiffies + (AZIHSM_CAP_TO(cap) + 1) * HZ / 2;
	u32 csts;

	for (;;) {
		csts = azihsm_csts(hsm);
		if (csts == AZIHSM_CSTS_GONE)
			return -ENODEV;
		if (!!(csts & AZIHSM_CSTS_RDY) == ready)
			return (csts & AZIHSM_CSTS_CFS) ? -EFAULT : 0;
		if (time_after(jiffies, deadline)) {
			dev_err(&hsm->pdev->dev, "CSTS.RDY did not become %d (CSTS %#x)\n", ready, csts);
			return -ETIMEDOUT;
		}
		cpu_relax();
	}
}

/* azihsm_hw_disable() - clear CC.EN and wait for RDY=0. */
int azihsm_hw_disable(struct azihsm_dev *hsm)
{
	u32 cc = readl(hsm->bar0 + AZIHSM_REG_CC);

	writel(cc & ~AZIHSM_CC_EN, hsm->bar0 + AZIHSM_REG_CC);
	return azihsm_wait_ready(hsm, false);
}

/*
 * azihsm_hw_enable() - bring the controller up on the admin queue in hsm->admin.
 * Disables a still-enabled controller first, programs AQA/ASQ/ACQ, sets EN and waits for RDY=1.
 */
int azihsm_hw_enable(struct azihsm_dev *hsm)
{
	u32 csts = azihsm_csts(hsm);
	u32 cc = readl(hsm->bar0 + AZIHSM_REG_CC);
	u32 vs;
	int ret;

	if (csts == AZIHSM_CSTS_GONE)
		return -ENODEV;
	if ((csts & AZIHSM_CSTS_RDY) || (cc & AZIHSM_CC_EN)) {
		ret = azihsm_hw_disable(hsm);
		if (ret)
			return ret;
	}
	readl(hsm->bar0 + AZIHSM_REG_AQA);
	writel(AZIHSM_AQA_VALUE, hsm->bar0 + AZIHSM_REG_AQA);
	writeq(hsm->admin.sq_dma, hsm->bar0 + AZIHSM_REG_ASQ);
	writeq(hsm->admin.cq_dma, hsm->bar0 + AZIHSM_REG_ACQ);
	cc = readl(hsm->bar0 + AZIHSM_REG_CC);
	writel(cc | AZIHSM_CC_EN, hsm->bar0 + AZIHSM_REG_CC);
	ret = azihsm_wait_ready(hsm, true);
	if (ret)
		return ret;
	vs = readl(hsm->bar0 + AZIHSM_REG_VS);
	dev_info(&hsm->pdev->dev, "controller ready, version %u.%u.%u\n",
		 vs >> 16, (vs >> 8) & 0xff, vs & 0xff);
	return 0;
}

/* azihsm_hw_set_entry_sizes() - RMW CC with the HSM/AES entry sizes; EN stays set. */
void azihsm_hw_set_entry_sizes(struct azihsm_dev *hsm)
{
	u32 cc = readl(hsm->bar0 + AZIHSM_REG_CC);

	cc = (cc & ~AZIHSM_CC_SIZES_MASK) | AZIHSM_CC_SIZES;
	writel(cc, hsm->bar0 + AZIHSM_REG_CC);
}

/* azihsm_hw_nssr() - NVM subsystem reset: write the magic and wait for RDY=0. */
int azihsm_hw_nssr(struct azihsm_dev *hsm)
{
	writel(AZIHSM_NSSR_MAGIC, hsm->bar0 + AZIHSM_REG_NSSR);
	return azihsm_wait_ready(hsm, false);
}
