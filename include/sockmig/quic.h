/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/**
 * @file sockmig/quic.h
 * libsockmig: QUIC-LB connection IDs of the UDP groups of mode quic-lb
 * (<sockmig/udp.h>), plaintext or encrypted. Part of the public API:
 * include <sockmig.h>, which includes this file with what it needs; not
 * on its own.
 */
#ifndef SOCKMIG_PUBLIC_QUIC_H
#define SOCKMIG_PUBLIC_QUIC_H

#ifndef SOCKMIG_H
#error "include <sockmig.h>, not <sockmig/quic.h>"
#endif

/* ---- QUIC-LB connection IDs ---------------------------------------------- */

/*
 * In mode SOCKMIG_UDP_MODE_QUIC_LB a server mints the connection IDs it
 * gives its clients with sockmig_quic_cid_encode(), and the group's program
 * routes every datagram that carries one to the socket it names. The
 * layout is that of QUIC-LB's plaintext algorithm
 * (draft-ietf-quic-load-balancers), with a 3-octet server ID:
 *
 *   octet 0     bits 7-5: config rotation (quic_config_id, 0 to 6; 7 is
 *               "unroutable" in the draft and never minted);
 *               bits 4-0: the CID's length minus 1 (length self-encoding)
 *   octets 1-3  server ID, big-endian: slot (12 bits: SOCKMIG_UDP_SLOTS),
 *               then the member's generation modulo 2^12 (12 bits)
 *   octets 4-   nonce from getrandom(), 4 to 16 octets (CID length 8 to 20)
 *
 * The program reads a short header's destination CID at payload offset 1
 * (the group's length), a long header's at offset 6 when the length at
 * offset 5 is the group's. A CID whose config rotation and length are the
 * group's, whose slot holds a live socket (any role) whose generation
 * modulo 2^12 is the encoded one, goes to that socket. Any other datagram
 * is handled as in mode flow (learned on its 4-tuple, to the working
 * generation when new): a client's Initial flight of several datagrams
 * stays on the socket that took its first, across a flip, while the
 * client's address and port do not change. So:
 * - a socket's CIDs stop reaching it when it is registered again with
 *   another generation, and reach a later socket of its slot if that one's
 *   generation is the same modulo 2^12 (slots are reused once closed);
 * - in a plaintext group (the default) the nonce is not secret and
 *   nothing is encrypted: a client or an observer can read the slot and
 *   generation of a CID, and tell two CIDs of one socket.
 *
 * Encrypted CIDs (a group made with sockmig_udp_group_opts.quic_key, a
 * 16-octet AES-128 key): octets 1 to the end (server ID and nonce) are
 * encrypted with QUIC-LB's four-pass algorithm (a four-round Feistel
 * network over AES-128-ECB; the draft's "General Case"), and the program
 * decrypts the server ID of every datagram before it reads slot and
 * generation (three AES blocks per datagram; Linux 5.11 or later). What
 * it hides and what not:
 * - hidden, from anyone without the key: the slot and generation, so an
 *   observer cannot link the CIDs of one connection across a client's
 *   migration, nor count or tell apart the group's sockets and reloads,
 *   nor aim datagrams at one socket with a forged CID (a forged CID
 *   decrypts to a random slot, which is seldom live: handled as flow);
 * - not hidden: octet 0 (config rotation and length, plaintext by the
 *   draft), the CID's length, and which UDP group (address and port) a
 *   datagram goes to; not authenticated: the cipher is not a MAC.
 * At length 17 (server ID and nonce of 16 octets) the layout is the
 * draft's single-pass one: octets 1 to 16 are one AES-128 block, which
 * the program decrypts (one AES decryption per datagram instead of three
 * encryptions).
 * The key is kept in the group's pinned maps (its directory is its
 * owner's, 0700) as round keys; copies in the library's memory are wiped
 * after use.
 */

/** Connection ID lengths, in octets (sockmig_udp_group_opts.quic_cid_len). */
#define SOCKMIG_QUIC_CID_MIN	 8
#define SOCKMIG_QUIC_CID_MAX	 20
#define SOCKMIG_QUIC_CID_DEFAULT 8
/** The largest config rotation id (7 is QUIC-LB's "unroutable"). */
#define SOCKMIG_QUIC_CONFIG_MAX 6
/** Generation bits of a CID: generations modulo 2^12 tell apart. */
#define SOCKMIG_QUIC_GEN_BITS 12

/** What a connection ID encodes. */
struct sockmig_quic_cid_info {
	uint32_t config_id;  /**< config rotation bits, 0 to SOCKMIG_QUIC_CONFIG_MAX */
	uint32_t slot;	     /**< slot of the member, below SOCKMIG_UDP_SLOTS */
	uint32_t generation; /**< its generation modulo 2^SOCKMIG_QUIC_GEN_BITS */
	uint32_t len;	     /**< the CID's length in octets */
};

/**
 * Mint a connection ID that the group's program routes to socket @p fd, a
 * live member of @p g (mode quic-lb): the group's config rotation, fd's
 * slot and generation, a fresh random nonce, encrypted with the group's
 * key when it has one, written to @p cid (@p len octets of room, at least
 * the group's quic_cid_len). One map read per
 * slot in use: call it when a connection gets a CID, not per datagram.
 * @return the CID's length; -EINVAL (not mode quic-lb, or @p len below the
 * group's length); -ENOENT (fd is not a live member of @p g); another
 * negative errno.
 */
SOCKMIG_API int sockmig_quic_cid_encode(struct sockmig_udp_group *g, int fd, uint8_t *cid,
					size_t len);

/**
 * Build the CID that @p info describes (info->len octets, SOCKMIG_QUIC_CID_MIN
 * to SOCKMIG_QUIC_CID_MAX; the generation taken modulo 2^12) into @p cid
 * (@p len octets of room), with a random nonce: for a server that keeps
 * its slot and generation (sockmig_udp_members()) and mints many CIDs.
 * Pure: no group, no privileges.
 * @return info->len, or -EINVAL (a length, config id or slot out of range).
 */
SOCKMIG_API int sockmig_quic_cid_build(const struct sockmig_quic_cid_info *info, uint8_t *cid,
				       size_t len);

/**
 * Read what CID @p cid of @p len octets encodes into @p out. Pure.
 * @return 0, or -EINVAL (a length out of range, a length octet that is not
 * @p len, config rotation 7).
 */
SOCKMIG_API int sockmig_quic_cid_decode(const uint8_t *cid, size_t len,
					struct sockmig_quic_cid_info *out);

/**
 * sockmig_quic_cid_build() for a group of encrypted CIDs: the CID that
 * @p info describes, encrypted with the 16-octet @p key (the group's
 * quic_key). Pure.
 * Four passes, or one AES block at length 17 (QUIC-LB's single pass).
 * @return info->len, or -EINVAL (what sockmig_quic_cid_build() refuses; no
 * key or 16 zero octets).
 */
SOCKMIG_API int sockmig_quic_cid_build_key(const struct sockmig_quic_cid_info *info,
					   const uint8_t *key, uint8_t *cid, size_t len);

/**
 * sockmig_quic_cid_decode() of an encrypted CID: its server ID decrypted
 * with the 16-octet @p key, as the group's program does (the nonce is not
 * returned). Pure. A CID of another key decodes to an unrelated slot and
 * generation: nothing tells it apart.
 * @return 0, or -EINVAL (what sockmig_quic_cid_decode() refuses; no key or
 * 16 zero octets).
 */
SOCKMIG_API int sockmig_quic_cid_decode_key(const uint8_t *cid, size_t len, const uint8_t *key,
					    struct sockmig_quic_cid_info *out);

/** Mode quic-lb's counters (datagrams, since the group was made). */
struct sockmig_quic_stats {
	/** Destination CID of a live member of its generation: to it. */
	uint64_t hits;
	/** A CID of the group's config whose member is gone (closed, another
	 *  generation): handled as in mode flow. A client's random Initial
	 *  DCID may count here (1 in 256 match the first octet). */
	uint64_t stale;
	/** No CID of the group's config (a client's Initial DCID, another
	 *  config rotation or length, a datagram too short): as mode flow. */
	uint64_t other;
};

/** Read the quic-lb counters of @p g into @p out (zero in other modes;
 *  the flow counters are sockmig_udp_stats_read()'s). @return 0 or a
 *  negative errno. */
SOCKMIG_API int sockmig_quic_stats_read(struct sockmig_udp_group *g,
					struct sockmig_quic_stats *out);

#endif /* SOCKMIG_PUBLIC_QUIC_H */
