// SPDX-License-Identifier: GPL-2.0
/*
 * A module that warns and leaks on load, so that `make check` can prove
 * the guest runner fails a run whose kernel log holds a splat or a
 * kmemleak report.
 */
#include <linux/bug.h>
#include <linux/module.h>
#include <linux/slab.h>

static void *af_bus_splat_leak;

static int __init af_bus_splat_init(void)
{
	WARN(1, "af_bus_splat: deliberate warning to test splat detection\n");
	/* Lost on purpose: kmemleak must report it. */
	af_bus_splat_leak = kmalloc(123, GFP_KERNEL);
	af_bus_splat_leak = NULL;
	return 0;
}

static void __exit af_bus_splat_exit(void)
{
}

module_init(af_bus_splat_init);
module_exit(af_bus_splat_exit);
MODULE_DESCRIPTION("Deliberate WARN and leak for the AF_BUS test rig");
MODULE_LICENSE("GPL");
