/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * QUIC-LB's four-pass encryption of a connection ID
 * (draft-ietf-quic-load-balancers, "General Case: Four-Pass Encryption"),
 * shared by the UDP group program (which takes the server ID out of a CID,
 * bpf/udp.bpf.c) and libsockmig (which mints CIDs, lib/quic_enc.c).
 *
 * The plaintext (server ID, then nonce: @len octets, 5 to 19 but 16) is
 * split into two halves of @half = ceil(len / 2) octets; when @len is odd
 * the middle octet is split, its high nibble the left half's last, its
 * low nibble the right half's first (the other nibble of each kept 0).
 * Four passes, each XORing into one half the first @half octets of
 * AES-128(expand(len, pass, other half)) where expand is the other half,
 * zeros, then octets len and pass (16 octets): right ^= F(left, 1),
 * left ^= F(right, 2), right ^= F(left, 3), left ^= F(right, 4).
 * Halves are SMQ_HALF_MAX octets here, zero past @half.
 */
#ifndef SOCKMIG_BPF_QUIC_ENC_H
#define SOCKMIG_BPF_QUIC_ENC_H

#include "aes128.h"

#define SMQ_HALF_MAX   10 /* ceil(19 / 2) */
#define SMQ_PT_MAX     19 /* a 20-octet CID, its first octet left out */
#define SMQ_SINGLE_LEN 16 /* QUIC-LB's single-pass case (a 17-octet CID): one block */
#define SMQ_INLINE     static inline __attribute__((always_inline))

/* Clear the pad nibbles of halves @left and @right (either may be NULL)
 * of a @len-octet plaintext: none when @len is even. */
SMQ_INLINE void smq_mask(__u8 *left, __u8 *right, __u32 len, __u32 half)
{
	int i;

	if (!(len & 1))
		return;
	if (left)
		for (i = 0; i < SMQ_HALF_MAX; i++)
			if ((__u32)i + 1 == half)
				left[i] &= 0xf0;
	if (right)
		right[0] &= 0x0f;
}

/* One pass: @x ^= F(@y, @pass), then @x's pad nibble cleared (@x is the
 * left half when @x_left). */
SMQ_INLINE void smq_pass(const __u8 *rk, const __u8 *sbox, __u8 *x, const __u8 *y, __u32 len,
			 __u32 half, __u32 pass, int x_left)
{
	__u8 b[SMQ_AES_BLOCK];
	int i;

	for (i = 0; i < SMQ_AES_BLOCK; i++)
		b[i] = i < SMQ_HALF_MAX ? y[i] : 0;
	b[14] = (__u8)len;
	b[15] = (__u8)pass;
	smq_aes128_encrypt(rk, sbox, b, b);
	for (i = 0; i < SMQ_HALF_MAX; i++)
		if ((__u32)i < half)
			x[i] ^= b[i];
	smq_mask(x_left ? x : 0, x_left ? 0 : x, len, half);
}

/*
 * Decrypt the left half: @left and @right are a ciphertext's halves
 * (left_2, right_2); @left becomes the plaintext's (left_0), which holds
 * the server ID whenever the nonce is at least as long as it (sockmig's
 * 3-octet ID: any CID length). Three passes (4, 3 and 2), not four: pass 1
 * would only give the right half, the nonce.
 */
SMQ_INLINE void smq_decrypt_left(const __u8 *rk, const __u8 *sbox, __u8 *left, __u8 *right,
				 __u32 len, __u32 half)
{
	smq_pass(rk, sbox, left, right, len, half, 4, 1);
	smq_pass(rk, sbox, right, left, len, half, 3, 0);
	smq_pass(rk, sbox, left, right, len, half, 2, 1);
}

#ifndef __bpf__
/* Split a @len-octet block @in into halves @left and @right. */
static inline void smq_split(const __u8 *in, __u32 len, __u8 *left, __u8 *right)
{
	__u32 half = (len + 1) / 2, i;

	for (i = 0; i < SMQ_HALF_MAX; i++)
		left[i] = right[i] = 0;
	for (i = 0; i < half; i++) {
		left[i] = in[i];
		right[i] = in[len - half + i];
	}
	smq_mask(left, right, len, half);
}

/* Join halves @left and @right into @len octets at @out (an odd @len's
 * middle octet of both). */
static inline void smq_join(const __u8 *left, const __u8 *right, __u32 len, __u8 *out)
{
	__u32 half = (len + 1) / 2, i;

	for (i = 0; i < len; i++)
		out[i] = 0;
	for (i = 0; i < half; i++) {
		out[i] |= left[i];
		out[len - half + i] |= right[i];
	}
}

/* Encrypt the plaintext @in (@sid_len octets of server ID, then @nonce_len
 * of nonce; their sum 5 to 19, but 16) into @out (as long): four passes. */
static inline void smq_encrypt(const __u8 *rk, const __u8 *sbox, __u32 sid_len, __u32 nonce_len,
			       const __u8 *in, __u8 *out)
{
	__u32 len = sid_len + nonce_len, half = (len + 1) / 2;
	__u8 l[SMQ_HALF_MAX], r[SMQ_HALF_MAX];

	smq_split(in, len, l, r);
	smq_pass(rk, sbox, r, l, len, half, 1, 0);
	smq_pass(rk, sbox, l, r, len, half, 2, 1);
	smq_pass(rk, sbox, r, l, len, half, 3, 0);
	smq_pass(rk, sbox, l, r, len, half, 4, 1);
	smq_join(l, r, len, out);
}

/* Decrypt all of ciphertext @in into @out (server ID and nonce, for a
 * server ID longer than the nonce too): the three passes of
 * smq_decrypt_left(), then pass 1 for the right half. */
static inline void smq_decrypt(const __u8 *rk, const __u8 *sbox, __u32 sid_len, __u32 nonce_len,
			       const __u8 *in, __u8 *out)
{
	__u32 len = sid_len + nonce_len, half = (len + 1) / 2;
	__u8 l[SMQ_HALF_MAX], r[SMQ_HALF_MAX];

	smq_split(in, len, l, r);
	smq_decrypt_left(rk, sbox, l, r, len, half);
	smq_pass(rk, sbox, r, l, len, half, 1, 0);
	smq_join(l, r, len, out);
}
#endif /* !__bpf__ */

#endif /* SOCKMIG_BPF_QUIC_ENC_H */
