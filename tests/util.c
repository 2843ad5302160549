// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The XDP ACK dropper of the tests; see util.h. */
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include "ackdrop.skel.h"
#include "util.h"

struct ackdrop_bpf *tu_ackdrop_attach(int port)
{
	struct ackdrop_bpf *s = ackdrop_bpf__open_and_load();
	int ifindex = (int)if_nametoindex("lo");

	if (!s)
		return NULL;
	s->bss->port = (__u16)port;
	s->bss->enabled = 1;
	if (bpf_xdp_attach(ifindex, bpf_program__fd(s->progs.ackdrop), XDP_FLAGS_SKB_MODE, NULL) <
	    0) {
		ackdrop_bpf__destroy(s);
		return NULL;
	}
	return s;
}

void tu_ackdrop_set(struct ackdrop_bpf *s, bool on)
{
	s->bss->enabled = on;
}

unsigned long long tu_ackdrop_dropped(struct ackdrop_bpf *s)
{
	return s->bss->dropped;
}

void tu_ackdrop_detach(struct ackdrop_bpf *s)
{
	if (!s)
		return;
	bpf_xdp_detach((int)if_nametoindex("lo"), XDP_FLAGS_SKB_MODE, NULL);
	ackdrop_bpf__destroy(s);
}
