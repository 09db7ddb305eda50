// SPDX-License-Identifier: GPL-2.0
/* /dev/azihsmN (class azihsm-hsm): open/release, ioctl dispatch, device info and reset (docs/guest-driver.md, "ioctl ABI"). */
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "azihsm.h"

#define AZIHSM_CLASS_NAME	"azihsm-hsm"
#define AZIHSM_MINORS		1040

/* The ABI is fixed (docs/guest-driver.md, "ioctl ABI"): pin sizes, offsets and ioctl numbers. */
static_assert(sizeof(struct azihsm_cp_generic_cmd) == 112);
static_assert(offsetof(struct azihsm_cp_generic_cmd, in.session_flags) == 64);
static_assert(offsetof(struct azihsm_cp_generic_cmd, out.ctxt) == 88);
static_assert(offsetof(struct azihsm_cp_generic_cmd, out.ioctl_extended_status) == 104);
static_assert(sizeof(struct azihsm_ctrl_dev_info) == 176);
static_assert(offsetof(struct azihsm_ctrl_dev_info, device_entropy) == 143);
static_assert(sizeof(struct azihsm_reset_device_data) == 272);
static_assert(offsetof(struct azihsm_reset_device_data, abort_sts) == 108);
static_assert(sizeof(struct azihsm_aes_ioctl) == 400);
static_assert(offsetof(struct azihsm_aes_ioctl, out_ctxt) == 240);
static_assert(offsetof(struct azihsm_aes_ioctl, out_iv_from_fw) == 280);
static_assert(AZIHSM_CTRL_PATH_GENERIC_IOCTL == 0xC0704202);
static_assert(AZIHSM_CTRL_PATH_GENERIC_IOCTL_SESSION == 0xC0704203);
static_assert(AZIHSM_GET_DEV_INFO_IOCTL == 0xC0B04204);
static_assert(AZIHSM_IOCTL_RESET_DEVICE == 0xC1104206);
static_assert(AZIHSM_AES_DEV_IOCTL_CMD_XTS == 0xC190420B);
static_assert(AZIHSM_AES_DEV_IOCTL_CMD_GCM == 0xC190420C);

static struct class *azihsm_class;
static dev_t azihsm_devt;
static DEFINE_IDR(azihsm_minors);	/* minor -> struct azihsm_dev */
static DEFINE_MUTEX(azihsm_minors_lock);

static int azihsm_open(struct inode *inode, struct file *filp)
{
	struct azihsm_dev *hsm;
	struct azihsm_file *f;

	mutex_lock(&azihsm_minors_lock);
	hsm = idr_find(&azihsm_minors, iminor(inode));
	if (hsm)
		kref_get(&hsm->ref);
	mutex_unlock(&azihsm_minors_lock);
	if (!hsm)
		return -ENODEV;
	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f) {
		azihsm_dev_put(hsm);
		return -ENOMEM;
	}
	f->hsm = hsm;
	f->owner = task_tgid_nr(current);
	init_rwsem(&f->session_rwsem);
	filp->private_data = f;
	return 0;
}

static int azihsm_release(struct inode *inode, struct file *filp)
{
	struct azihsm_file *f = filp->private_data;
	struct azihsm_dev *hsm = f->hsm;
	int ret = 0;

	if (task_tgid_nr(current) == f->owner)
		azihsm_session_flush(f);
	else
		ret = -EINVAL;	/* not the opener: its session is not flushed */
	kfree(f);
	azihsm_dev_put(hsm);
	return ret;
}

static long azihsm_ioctl_dev_info(struct azihsm_dev *hsm, void __user *argp)
{
	const size_t len = offsetofend(struct azihsm_ctrl_dev_info, device_entropy);
	struct azihsm_ctrl_dev_info info;
	long ret = 0;

	if (copy_from_user(&info, argp, len))
		return -EFAULT;
	if (info.argsz < sizeof(info)) {
		dev_warn_ratelimited(&hsm->pdev->dev, "dev-info ioctl: argsz %u < %zu\n", info.argsz,
				     sizeof(info));
		return -EINVAL;
	}
	down_read(&hsm->io_rwsem);
	if (READ_ONCE(hsm->state) != AZIHSM_STATE_READY) {
		ret = -EAGAIN;
	} else {
		info.id = hsm->ctrl_id;
		strscpy(info.pci_info, pci_name(hsm->pdev), sizeof(info.pci_info));
		strscpy(info.serial, hsm->serial, sizeof(info.serial));
		memset(info.model, 0, sizeof(info.model));
		strscpy(info.fw_rev, hsm->fw_rev, sizeof(info.fw_rev));
		strscpy_pad(info.driver_rev, AZIHSM_DRIVER_REV, sizeof(info.driver_rev));
		memset(info.reserved, 0, sizeof(info.reserved));
		memcpy(info.device_entropy, hsm->entropy, sizeof(info.device_entropy));
	}
	up_read(&hsm->io_rwsem);
	if (!ret && copy_to_user(argp, &info, len))
		ret = -EFAULT;
	return ret;
}

static long azihsm_ioctl_reset(struct azihsm_dev *hsm, void __user *argp)
{
	struct azihsm_reset_device_data r;
	long ret;

	if (copy_from_user(&r, argp, sizeof(r)))
		return -EFAULT;
	if (r.hdr.szioctldata < sizeof(r)) {
		dev_warn_ratelimited(&hsm->pdev->dev, "reset ioctl: szioctldata %u < %zu\n",
				     r.hdr.szioctldata, sizeof(r));
		return -EINVAL;
	}
	if (r.abort_type != AZIHSM_RESET_NSSR && r.abort_type != AZIHSM_RESET_CC_EN) {
		dev_warn_ratelimited(&hsm->pdev->dev, "reset ioctl: abort_type %u invalid\n",
				     r.abort_type);
		r.abort_sts = AZIHSM_RESET_STS_BAD_TYPE;
		ret = -EINVAL;
	} else {
		down_read(&hsm->io_rwsem);
		ret = azihsm_abort_level2(hsm, r.abort_type == AZIHSM_RESET_NSSR);
		up_read(&hsm->io_rwsem);
		switch (ret) {
		case 0:
			r.abort_sts = AZIHSM_RESET_STS_OK;
			break;
		case -EBUSY:
			r.abort_sts = AZIHSM_RESET_STS_IN_PROGRESS;
			break;
		case -ENODEV:
			r.abort_sts = AZIHSM_RESET_STS_BAD_STATE;
			break;
		default:
			r.abort_sts = AZIHSM_RESET_STS_FAILED;
			ret = -EIO;
		}
	}
	if (copy_to_user(argp, &r, sizeof(r)))
		return -EFAULT;
	return ret;
}

static long azihsm_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct azihsm_file *f = filp->private_data;
	void __user *argp = (void __user *)arg;

	if (task_tgid_nr(current) != f->owner)
		return -EACCES;
	switch (cmd) {
	case AZIHSM_CTRL_PATH_GENERIC_IOCTL_SESSION:
		return azihsm_ioctl_hsm_cmd(f, argp);
	case AZIHSM_GET_DEV_INFO_IOCTL:
		return azihsm_ioctl_dev_info(f->hsm, argp);
	case AZIHSM_IOCTL_RESET_DEVICE:
		return azihsm_ioctl_reset(f->hsm, argp);
	case AZIHSM_AES_DEV_IOCTL_CMD_XTS:
	case AZIHSM_AES_DEV_IOCTL_CMD_GCM:
		return azihsm_ioctl_aes(f, argp, cmd);
	default:
		dev_warn_ratelimited(&f->hsm->pdev->dev, "unsupported ioctl %#x\n", cmd);
		return -EBADRQC;
	}
}

static const struct file_operations azihsm_fops = {
	.owner = THIS_MODULE,
	.open = azihsm_open,
	.release = azihsm_release,
	.unlocked_ioctl = azihsm_ioctl,
	.llseek = noop_llseek,
};

/* azihsm_cdev_add() - create /dev/azihsmN for @hsm (N = lowest free minor). */
int azihsm_cdev_add(struct azihsm_dev *hsm)
{
	struct device *chardev;
	struct cdev *cdev;
	dev_t devt;
	int minor, ret;

	mutex_lock(&azihsm_minors_lock);
	minor = idr_alloc(&azihsm_minors, hsm, 0, AZIHSM_MINORS, GFP_KERNEL);
	mutex_unlock(&azihsm_minors_lock);
	if (minor < 0)
		return minor;
	devt = MKDEV(MAJOR(azihsm_devt), minor);
	cdev = cdev_alloc();
	if (!cdev) {
		ret = -ENOMEM;
		goto err_idr;
	}
	cdev->owner = THIS_MODULE;
	cdev->ops = &azihsm_fops;
	ret = cdev_add(cdev, devt, 1);
	if (ret) {
		kobject_put(&cdev->kobj);
		goto err_idr;
	}
	chardev = device_create(azihsm_class, &hsm->pdev->dev, devt, hsm, "azihsm%d", minor);
	if (IS_ERR(chardev)) {
		ret = PTR_ERR(chardev);
		cdev_del(cdev);
		goto err_idr;
	}
	hsm->minor = minor;
	hsm->cdev = cdev;
	hsm->chardev = chardev;
	return 0;

err_idr:
	mutex_lock(&azihsm_minors_lock);
	idr_remove(&azihsm_minors, minor);
	mutex_unlock(&azihsm_minors_lock);
	return ret;
}

/* azihsm_cdev_remove() - remove /dev/azihsmN; open fds keep working until closed (-ENODEV). */
void azihsm_cdev_remove(struct azihsm_dev *hsm)
{
	if (!hsm->cdev)
		return;
	device_destroy(azihsm_class, MKDEV(MAJOR(azihsm_devt), hsm->minor));
	cdev_del(hsm->cdev);
	mutex_lock(&azihsm_minors_lock);
	idr_remove(&azihsm_minors, hsm->minor);
	mutex_unlock(&azihsm_minors_lock);
	hsm->cdev = NULL;
	hsm->chardev = NULL;
}

/* azihsm_cdev_module_init() - register the azihsm-hsm class and chrdev region. */
int azihsm_cdev_module_init(void)
{
	int ret = alloc_chrdev_region(&azihsm_devt, 0, AZIHSM_MINORS, AZIHSM_CLASS_NAME);

	if (ret)
		return ret;
	azihsm_class = class_create(THIS_MODULE, AZIHSM_CLASS_NAME);
	if (IS_ERR(azihsm_class)) {
		unregister_chrdev_region(azihsm_devt, AZIHSM_MINORS);
		return PTR_ERR(azihsm_class);
	}
	return 0;
}

/* azihsm_cdev_module_exit() - undo azihsm_cdev_module_init(). */
void azihsm_cdev_module_exit(void)
{
	class_destroy(azihsm_class);
	unregister_chrdev_region(azihsm_devt, AZIHSM_MINORS);
	idr_destroy(&azihsm_minors);
}
