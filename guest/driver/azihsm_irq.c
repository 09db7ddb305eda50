// SPDX-License-Identifier: GPL-2.0
/*
 * MSI-X vectors (docs/guest-driver.md, "Design"): vector 0 serves the admin queue, 1.. the HSM queues and
 * 16.. the AES queues. The ISR drains every CQ bound to its vector, in interrupt context: draining
 * takes each queue's lock with interrupts off and only completes waiters and wakes submitters.
 */
#include "azihsm.h"

static irqreturn_t azihsm_isr(int irq, void *data)
{
	struct azihsm_vector *vec = data;
	struct azihsm_dev *hsm = vec->hsm;
	unsigned int i;

	if (vec->index == 0)
		azihsm_queue_drain(&hsm->admin);
	for (i = 0; i < smp_load_acquire(&hsm->nr_hsm_alloc); i++)
		if (hsm->hsm_q[i].vector == vec->index)
			azihsm_queue_drain(&hsm->hsm_q[i]);
	for (i = 0; i < smp_load_acquire(&hsm->nr_aes_alloc); i++)
		if (hsm->aes_q[i].vector == vec->index)
			azihsm_queue_drain(&hsm->aes_q[i]);
	return IRQ_HANDLED;
}

/* azihsm_irq_alloc() - allocate 3..32 MSI-X vectors (no MSI/INTx fallback). */
int azihsm_irq_alloc(struct azihsm_dev *hsm)
{
	int n = pci_alloc_irq_vectors(hsm->pdev, AZIHSM_MIN_VECTORS, AZIHSM_MAX_VECTORS,
				      PCI_IRQ_MSIX);
	int i;

	if (n < 0) {
		dev_err(&hsm->pdev->dev, "MSI-X with at least %d vectors unavailable: %d\n",
			AZIHSM_MIN_VECTORS, n);
		return n;
	}
	hsm->nr_vectors = n;
	for (i = 0; i < n; i++) {
		hsm->vectors[i].hsm = hsm;
		hsm->vectors[i].index = i;
	}
	return 0;
}

/* azihsm_irq_request() - request vector @index once; later calls for the same vector are no-ops. */
int azihsm_irq_request(struct azihsm_dev *hsm, u16 index)
{
	struct azihsm_vector *vec;
	int ret;

	if (index >= hsm->nr_vectors) {
		dev_err(&hsm->pdev->dev, "MSI-X vector %u needed but only %d granted\n", index,
			hsm->nr_vectors);
		return -ENOSPC;
	}
	vec = &hsm->vectors[index];
	if (vec->requested)
		return 0;
	ret = pci_request_irq(hsm->pdev, index, azihsm_isr, NULL, vec, "azihsm_ctrl-%u", index);
	if (ret)
		return ret;
	vec->requested = true;
	return 0;
}

/*
 * azihsm_irq_steer() - point the vector of each of the @nr queues @qs at the CPUs that submit on it
 * (azihsm_cpu_queue()), so that a completion interrupt arrives on the CPU where the waiting task
 * sleeps instead of waking it from another CPU. Best effort: a vector the kernel does not move
 * keeps the affinity it has, which costs speed, not correctness.
 */
void azihsm_irq_steer(struct azihsm_dev *hsm, struct azihsm_queue *qs, unsigned int nr)
{
	cpumask_var_t mask;
	unsigned int i, cpu;
	int ret;

	if (!nr || !zalloc_cpumask_var(&mask, GFP_KERNEL))
		return;
	for (i = 0; i < nr; i++) {
		cpumask_clear(mask);
		for_each_possible_cpu(cpu)	/* its queue may share the vector with others */
			if (azihsm_cpu_queue(qs, nr, cpu)->vector == qs[i].vector)
				cpumask_set_cpu(cpu, mask);
		if (!cpumask_intersects(mask, cpu_online_mask))
			continue;	/* a vector no online CPU submits on */
		ret = irq_set_affinity(pci_irq_vector(hsm->pdev, qs[i].vector), mask);
		if (ret)
			dev_dbg(&hsm->pdev->dev, "vector %u keeps its affinity: %d\n", qs[i].vector, ret);
	}
	free_cpumask_var(mask);
}

/* azihsm_irq_free_all() - free every requested vector (waiting for a running ISR), release MSI-X. */
void azihsm_irq_free_all(struct azihsm_dev *hsm)
{
	int i;

	for (i = 0; i < hsm->nr_vectors; i++) {
		struct azihsm_vector *vec = &hsm->vectors[i];

		if (vec->requested)
			pci_free_irq(hsm->pdev, i, vec);
		vec->requested = false;
	}
	if (hsm->nr_vectors)
		pci_free_irq_vectors(hsm->pdev);
	hsm->nr_vectors = 0;
}
