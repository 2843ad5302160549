/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What lib/udp.c (open, close, destroy, member checks), lib/udp_member.c
 * (slots, working generation, drains, lists, counters), lib/udp_claim.c
 * (flows claimed by a member) and lib/quic_lb.c (mode quic-lb's
 * connection IDs) share: the UDP group handle and its map
 * indexes; not installed.
 */
#ifndef SOCKMIG_UDP_PRIV_H
#define SOCKMIG_UDP_PRIV_H

#include "group_priv.h"
#include "udp.h"

enum {
	UFD_MEMBERS,
	UFD_SLOTS,
	UFD_FLOWS,
	UFD_TABLE,
	UFD_TABIDX,
	UFD_CONFIG,
	UFD_STATS,
	UFD_QKEY,
	UFD_PROG,
	UFD_N
};

/* Their pin names, in that order (lib/udp.c). */
SM_HIDDEN extern const char *const sm_udp_pins[UFD_N];

/* Every pin of the group's directory into g->fd (lib/udp.c): 0; -ENOENT
 * when one is missing; -EPERM when not the caller's to open; -ESTALE
 * (after an error line) when the group is of an older version that this
 * one upgrades (sm_udp_upgradable()); -EEXIST (after an error line) when a
 * map's values are otherwise not this version's. */
SM_HIDDEN int sm_udp_get_pinned(struct sockmig_udp_group *g);

/* Upgrades of groups pinned by an older version (lib/udp_upgrade.c).
 * Whether values of @value_size in map @i (UFD_*) are an older layout of
 * this version's, which an upgrade copies. */
SM_HIDDEN bool sm_udp_upgradable(unsigned int i, uint32_t value_size);
/* Whether map @i is pinned in the group's directory with such values (its
 * entries then in *@max_entries, when not NULL). */
SM_HIDDEN bool sm_udp_pin_older(const struct sockmig_udp_group *g, unsigned int i,
				uint32_t *max_entries);
/* For a group of an older layout whose maps g holds: 0 when it may be
 * upgraded; -EEXIST after an error line when not (it learns flows when
 * claimed; @qkey_short: before 17-octet CIDs). */
SM_HIDDEN int sm_udp_upgrade_refusal(const struct sockmig_udp_group *g, bool qkey_short);
/* Fill map @new (this version's map @i, unpinned) from the older one
 * pinned, then pin it beside it ("new-" and its name). Under the group
 * lock. 0, or a negative errno after an error line. */
SM_HIDDEN int sm_udp_upgrade_map(const struct sockmig_udp_group *g, unsigned int i, int new);
/* Then the older flows renamed UDP_OLDER_FLOWS (@flows), the new ones
 * over them, the new counters over the older ones (@stats). */
SM_HIDDEN int sm_udp_upgrade_pins(const struct sockmig_udp_group *g, bool flows, bool stats);
/* An upgrade (or a program's pin) that failed: its new pins removed, the
 * older flows back in place when their rename was half done. */
SM_HIDDEN void sm_udp_upgrade_drop(const struct sockmig_udp_group *g);
/* After an upgrade: attach g's program through a UDP socket of the
 * calling process bound to the group's address, when it has one, then
 * sm_udp_upgrade_catch_up(). Under the group lock. */
SM_HIDDEN void sm_udp_upgrade_attach(struct sockmig_udp_group *g);
/* Once g's program is attached (any member add): when UDP_OLDER_FLOWS is
 * pinned, its flows copied over the group's table, then it is removed
 * (kept when the copy fails). Under the group lock. */
SM_HIDDEN void sm_udp_upgrade_catch_up(struct sockmig_udp_group *g);
#define UDP_OLDER_FLOWS "older-flows"

struct sockmig_udp_group {
	/* path, root, name, dirfd for pin.c's directory and lock code; none
	 * of its TCP maps is used (their fds stay -1) */
	struct sockmig_group base;
	int fd[UFD_N];
	uint64_t netns;
	/* what the group was when this handle opened it (mode, timeout, flow
	 * table, QUIC CIDs): to make it again as it was (sm_udp_lock_current) */
	struct sockmig_udp_group_opts made;
	/* the member sm_udp_fd_slot() found last and its slot (a hint: its
	 * next call tries that slot first); 0: none yet */
	uint64_t last_cookie;
	uint32_t last_slot;
};

/* A handle with no fd open (lib/udp.c). */
SM_HIDDEN struct sockmig_udp_group *sm_udp_alloc(void);

/* Note in g->made what the group's pins say it is (lib/udp.c). */
SM_HIDDEN void sm_udp_note_made(struct sockmig_udp_group *g);

/* Under the group lock: the directory g holds is still the one pinned at
 * its path (no collect or destroy removed it since g opened it). */
SM_HIDDEN bool sm_udp_dir_current(struct sockmig_udp_group *g);

/* Take the group lock for a change that must land in the pinned group (a
 * new member): when the directory g holds was removed since g opened it
 * (the group's last member went, lib/udp_gc.c), the group is opened again,
 * made anew as g->made says when missing, and the new directory's lock is
 * held on return (lib/udp.c). 0, or a negative errno after an error line. */
SM_HIDDEN int sm_udp_lock_current(struct sockmig_udp_group *g);

/* fd must be a UDP socket with SO_REUSEPORT bound to the group's address
 * and port in the group's network namespace (lib/udp.c). */
SM_HIDDEN int sm_udp_check_member_fd(struct sockmig_udp_group *g, int fd);

/* A slot as user space sees it (lib/udp_member.c reads them). */
struct uslot {
	struct smu_slot s;
	bool live; /* the socket array holds the socket of s.cookie */
};

/* Each flow of the table whose owner still lives in its slot (the slot's
 * cookie is the one learned) and that was seen within the idle timeout:
 * @fn(flow, @arg). Without the group lock, @u a copy of the slots
 * (sm_udp_slots_copy()). 0, or a negative errno after an error line. */
/* The live slot of member @cookie, or SMU_MAX_MEMBERS. */
SM_HIDDEN uint32_t sm_udp_slot_of(const struct uslot *u, uint64_t cookie);
/* Take slot @i's socket out of the socket array (the program selects it no
 * more: its flows fall to the working generation, their slot's cookie no
 * longer matching) and empty the slot. Under the group's lock. */
SM_HIDDEN int sm_udp_unhook_slot(struct sockmig_udp_group *g, struct uslot *u, uint32_t i);
SM_HIDDEN int sm_udp_each_live_flow(struct sockmig_udp_group *g, const struct uslot *u,
				    void (*fn)(const struct smu_flow *f, void *arg), void *arg);
/* Whether the program's time stamp @last (CLOCK_MONOTONIC, coarse where
 * the kernel has it: up to a tick behind the precise clock) is more than
 * @timeout_ns (0: never) before @now (sm_now_ns()), with one tick of the
 * coarse clock's slack: user space never calls idle what the program, at
 * its next datagram, would still call live. */
/* The group's counters summed over the CPUs into @sum. 0, or a negative
 * errno after an error line. */
/* The live slot of member @fd (its cookie into *@cookie) and its slot
 * into @s, among the slots config @c says were used; a negative errno
 * after an error line (-ENOENT: not a live member). The handle's last
 * member found is tried first. */
SM_HIDDEN int sm_udp_fd_slot(struct sockmig_udp_group *g, int fd, const struct smu_config *c,
			     struct smu_slot *s, uint64_t *cookie);
/* Mode quic-lb's key (lib/quic_enc.c). Of the group's maker (@made, its
 * config @c, mode set): when @key, mark @c encrypted and write the key's
 * round keys to the group's qkey map; of a later open: EEXIST when @key
 * is not the group's, or when @key is NULL but @cid_len given and the
 * group is encrypted. 0, or a negative errno after an error line. */
SM_HIDDEN int sm_quic_key_set(struct sockmig_udp_group *g, struct smu_config *c, const uint8_t *key,
			      uint32_t cid_len, bool made);
/* Whether the config pinned in @g's directory says the group's CIDs are
 * encrypted: 1 yes, 0 no, -1 when the group is not made yet (no config
 * pinned, or one not set: its mode 0) or the config is unreadable. */
SM_HIDDEN int sm_quic_pinned_enc(const struct sockmig_udp_group *g);
/* The key of encrypted group @g into @key (16 octets; the caller wipes
 * it). 0, or a negative errno after an error line. */
SM_HIDDEN int sm_quic_key_get(struct sockmig_udp_group *g, uint8_t *key);
/* Build the CID that @info describes, encrypted with the round keys and
 * S-box of @q when it is not NULL (lib/quic_enc.c, lib/quic_lb.c). */
SM_HIDDEN int sm_quic_cid_build(const struct sockmig_quic_cid_info *info, const struct smu_qkey *q,
				uint8_t *cid, size_t len);
/* Encrypt octets 1 to @n - 1 of CID @cid in place (lib/quic_enc.c):
 * 0, or -EINVAL for a length of 17 (after an error line). */
SM_HIDDEN int sm_quic_cid_encrypt(const struct smu_qkey *q, uint8_t *cid, uint32_t n);
SM_HIDDEN int sm_udp_stats_sum(struct sockmig_udp_group *g, struct smu_stats *sum);
SM_HIDDEN bool sm_udp_idle(uint64_t timeout_ns, uint64_t last, uint64_t now);
/* Called with @n entries of a flow table, each value as it is with the
 * fields past the table's zero: 0 to go on, or a negative errno that ends
 * the walk. */
typedef int (*sm_udp_flows_fn)(const struct smu_flow_key *k, const struct smu_flow *v, uint32_t n,
			       void *arg);
/* Walk flow table @fd (lib/udp_walk.c), without the group's lock. 0, or
 * a negative errno (@fn's, or the walk's). */
SM_HIDDEN int sm_udp_flow_walk(int fd, sm_udp_flows_fn fn, void *arg);
/* The slots as the group's lock shows them, into @u (SMU_MAX_MEMBERS),
 * for a flow walk after it. 0, or a negative errno after an error line. */
SM_HIDDEN int sm_udp_slots_copy(struct sockmig_udp_group *g, struct uslot *u);
/* Run @fn on the slots (read, a closed member's emptied) under the group
 * lock, then rebuild the selection table: lib/udp_member.c's one way to
 * change members, for lib/udp_retire.c too. @fn's result, or a negative
 * errno. */
SM_HIDDEN int sm_udp_with_slots(struct sockmig_udp_group *g,
				int (*fn)(struct sockmig_udp_group *g, struct uslot *u, void *arg),
				void *arg);

#endif /* SOCKMIG_UDP_PRIV_H */
