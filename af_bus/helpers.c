// SPDX-License-Identifier: GPL-2.0
/*
 * Static inline functions of the kernel that af_bus.ko's Rust code calls
 * and that the 6.12 kernel crate has no helper for (each the inline
 * itself, nothing more), and the family's sk_write_space callback.
 */

#include <linux/cred.h>
#include <linux/sched/signal.h>
#include <linux/uaccess.h>
#include <linux/user_namespace.h>
#include <net/sock.h>

#include "helpers.h"

void af_bus_pagefault_disable(void)
{
	pagefault_disable();
}

void af_bus_pagefault_enable(void)
{
	pagefault_enable();
}

unsigned long af_bus_rlimit_nofile(void)
{
	return rlimit(RLIMIT_NOFILE);
}

/* A function only with CONFIG_TRACEPOINTS, kfree_skb() without. */
void af_bus_consume_skb(struct sk_buff *skb)
{
	consume_skb(skb);
}

void af_bus_prot_inuse_add(struct sock *sk, int val)
{
	sock_prot_inuse_add(sock_net(sk), sk->sk_prot, val);
}

/*
 * The user the calling task's messages are charged to: its real uid, or
 * for a task in a user namespace, the owner of the outermost namespace
 * below the initial one (a range of subordinate uids is one user).
 */
u32 af_bus_quota_uid(void)
{
	const struct cred *cred = current_cred();
	struct user_namespace *ns = cred->user_ns;

	if (ns == &init_user_ns)
		return __kuid_val(cred->uid);
	while (ns->parent && ns->parent != &init_user_ns)
		ns = ns->parent;
	return __kuid_val(ns->owner);
}

/*
 * sk_write_space of an AF_BUS socket: room opened at a destination it
 * polls for (its master), not in its own send buffer, so it wakes
 * writers and pollers with EPOLLOUT unconditionally, as AF_UNIX's
 * unix_write_space does once its peer has room.
 */
void af_bus_write_space(struct sock *sk)
{
	struct socket_wq *wq;

	rcu_read_lock();
	wq = rcu_dereference(sk->sk_wq);
	if (skwq_has_sleeper(wq))
		wake_up_interruptible_sync_poll(&wq->wait,
						EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND);
	sk_wake_async_rcu(sk, SOCK_WAKE_SPACE, POLL_OUT);
	rcu_read_unlock();
}
