/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Types shared by the UDP group program (udp.bpf.c) and libsockmig
 * (lib/udp.c).
 *
 * One UDP group = one SO_REUSEPORT group of UDP sockets = one directory in
 * bpffs, next to the TCP groups under the same pin root, named
 * "<netns>-udp4|udp6-<address>-<port>", holding:
 *   members   REUSEPORT_SOCKARRAY  slot -> socket
 *   slots     ARRAY                slot -> struct smu_slot (who is in it)
 *   flows     LRU_HASH             struct smu_flow_key -> struct smu_flow
 *   table     ARRAY[2]             double-buffered struct smu_table
 *   tabidx    ARRAY[1]             which table copy is current
 *   config    ARRAY[1]             struct smu_config
 *   qkey      ARRAY[1]             struct smu_qkey (mode quic-lb, encrypted CIDs)
 *   stats     PERCPU_ARRAY[1]      struct smu_stats
 *
 * User space owns slots, table and config (written under the group lock);
 * the program reads them, learns flows and counts.
 */
#ifndef SOCKMIG_BPF_UDP_H
#define SOCKMIG_BPF_UDP_H

#include <linux/types.h>

/* Sockets with a slot in a UDP group (a power of 2). */
#define SMU_MAX_MEMBERS 4096
/* Members tried per list when the one hashed to has closed since the
 * table was built. */
#define SMU_TRY_MAX 8

/* How the group finds the owner of a datagram (struct smu_config.mode). */
enum smu_mode {
	SMU_MODE_FLOW = 1,    /* learned 4-tuple table */
	SMU_MODE_NONE = 2,    /* stateless: the working generation only */
	SMU_MODE_QUIC_LB = 3, /* QUIC: the server's connection ID, else as flow */
};

/*
 * QUIC-LB connection IDs (plaintext, draft-ietf-quic-load-balancers), as
 * lib/quic_lb.c mints them, SMU_QUIC_CID_MIN to SMU_QUIC_CID_MAX octets:
 *   octet 0     config rotation (3 high bits), CID length - 1 (5 low bits)
 *   octets 1-3  server ID: slot (12 bits) << 12 | generation (low 12 bits)
 *   octets 4-   nonce (random)
 * The program reads octets 0 to 3 only (and checks that the CID is whole).
 * Encrypted (struct smu_config.quic_enc): octets 1 to the end are the
 * server ID and nonce encrypted with QUIC-LB's four-pass algorithm
 * (quic_enc.h), or at 17 octets with its single-pass one (one AES block);
 * the program decrypts octets 1-3 back (the encrypted variant of the
 * program, sockmig_udp_enc).
 */
#define SMU_QUIC_CID_MIN  8
#define SMU_QUIC_CID_MAX  20
#define SMU_QUIC_CR_MAX	  6 /* 7: "unroutable" in the draft */
#define SMU_QUIC_GEN_BITS 12
#define SMU_QUIC_GEN_MASK ((1u << SMU_QUIC_GEN_BITS) - 1)

/* When a group learns a flow (struct smu_config.learn; 0 reads as RECEIVE). */
enum smu_learn {
	SMU_LEARN_RECEIVE = 1, /* at its first datagram received */
	SMU_LEARN_CLAIM = 2,   /* only when user space writes it (a member's claim) */
};

enum smu_role {
	SMU_ROLE_ACTIVE = 1,
	SMU_ROLE_DRAINING = 2,
};

/* Who holds a slot; cookie 0: nobody. */
struct smu_slot {
	__u64 cookie;
	__u32 generation;
	__u32 role;
	__u32 pid;
	__u32 pad;
	/* mode quic-lb: when a datagram last reached it by its CID (the
	 * program's clock, CLOCK_MONOTONIC, coarse where the kernel has it:
	 * up to a tick behind, see udp.bpf.c): its connections live while this
	 * is within the idle timeout, though no flow of theirs is refreshed */
	__u64 last_cid_ns;
};

/* A flow: the full 4-tuple as the datagram carries it, in network byte
 * order; IPv4 addresses in addr[0] (the rest zero), family AF_INET or
 * AF_INET6 by the packet's IP version (a v4 datagram to a v6 socket is
 * AF_INET). No hash of it is ever the key. */
struct smu_flow_key {
	__u32 family;
	__u16 sport;
	__u16 dport;
	__u32 saddr[4];
	__u32 daddr[4];
};

/* Its owner: the socket of @slot whose cookie was @cookie when it was
 * learned; @last_ns: CLOCK_MONOTONIC at its latest datagram, as the
 * program reads it (coarse where the kernel has it, see udp.bpf.c);
 * @quic_scid: the client's QUIC connection ID (the source CID of its
 * Initials, the first 8 octets), 0 when none was seen: an Initial with
 * another one, while the flow's @generation is not the working one, is a
 * new connection from the same 4-tuple (the client's port came back), a
 * new flow. */
struct smu_flow {
	__u64 cookie;
	__u64 last_ns;
	__u32 slot;
	__u32 generation;
	__u64 quic_scid;
};

struct smu_config {
	__u32 mode;	       /* enum smu_mode; 0 until the group's maker sets it */
	__u32 working_pinned;  /* user space only: working_gen was set by hand */
	__u64 idle_timeout_ns; /* a flow idle longer is new again; 0: never */
	__u32 working_gen;     /* user space only: the generation set by hand */
	__u32 slots_hw;	       /* user space only: slots [slots_hw, SMU_MAX_MEMBERS) never used */
	__u32 quic_cid_len;    /* mode quic-lb: length of the server's CIDs */
	__u32 quic_cr;	       /* mode quic-lb: config rotation bits of its CIDs */
	__u32 learn;	       /* enum smu_learn: CLAIM: the program writes no flow */
	/* the working generation of the table in force (struct smu_table's),
	 * copied here by user space at each rebuild: the program counts
	 * old_gen without reading the table on a flow's hit */
	__u32 table_gen;
	/* mode quic-lb: 1: its CIDs are encrypted with the round keys of
	 * qkey (and the group runs sockmig_udp_enc); fixed when made */
	__u32 quic_enc;
	__u32 pad;
};

/* Mode quic-lb, encrypted CIDs: the AES-128 round keys of the group's
 * key, the S-box and its inverse (aes128.h says why here); all zeros in a plaintext
 * group. Written once by the group's maker, read by the program and by
 * lib/quic_enc.c alone (the group's directory is its owner's, 0700). */
struct smu_qkey {
	__u8 rk[176];
	__u8 sbox[256];
	__u8 isbox[256]; /* the inverse S-box, for 17-octet CIDs */
};

/*
 * The selection table, rebuilt by user space whenever a member changes:
 * slots of the live active members of the working generation, then of
 * every live active member (the fallback while the first list's sockets
 * are all gone). Entries past n_* are not read.
 */
struct smu_table {
	__u32 working_gen;
	__u32 n_working;
	__u32 n_active;
	__u32 pad;
	__u32 working[SMU_MAX_MEMBERS];
	__u32 active[SMU_MAX_MEMBERS];
};

/* Counters of the group, per CPU (summed by user space). */
struct smu_stats {
	__u64 new_flows;     /* first datagram of a flow: learned, to the working generation */
	__u64 flow_hits;     /* datagram of a known flow, to the socket that owns it */
	__u64 fallbacks;     /* known flow whose owner had closed: to the working generation */
	__u64 expired;	     /* known flow idle past the timeout: learned again as new */
	__u64 stateless;     /* to the working generation, unlearned (mode none; LEARN_CLAIM) */
	__u64 kernel_hash;   /* no live active member selectable: the kernel's hash chose */
	__u64 not_learned;   /* the flow table refused the entry (selected all the same) */
	__u64 parse_failed;  /* no readable IP or UDP header: the kernel's hash chose */
	__u64 quic_hits;     /* quic-lb: DCID of a live member of its generation, to it */
	__u64 quic_stale;    /* quic-lb: DCID of this config whose member is gone: as flow */
	__u64 quic_other;    /* quic-lb: no DCID of this config (client's, too short): as flow */
	__u64 old_gen;	     /* a flow hit or quic hit to a member whose generation is not
			     * config.table_gen (an older one after a flip) */
	__u64 quic_new_conn; /* a known flow's QUIC long header with another client CID:
			      * a new connection, counted in new_flows too */
};

#endif
