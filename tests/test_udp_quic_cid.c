// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * QUIC-LB connection IDs (lib/quic_lb.c), pure: built and decoded for every
 * length, config rotation id and a spread of slots and generations, and bad
 * input refused. Routing by them is in test_udp_quic.c.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "sockmig.h"

SM_PURE(udp_quic_cid_build_decode_round_trip)
{
	static const uint32_t slots[] = {0, 1, 2730, 4095}, gens[] = {0, 1, 255, 4095, 4096, 70000};
	struct sockmig_quic_cid_info in, out;
	uint8_t cid[SOCKMIG_QUIC_CID_MAX + 1], again[SOCKMIG_QUIC_CID_MAX];

	for (uint32_t len = SOCKMIG_QUIC_CID_MIN; len <= SOCKMIG_QUIC_CID_MAX; len++)
		for (uint32_t cr = 0; cr <= SOCKMIG_QUIC_CONFIG_MAX; cr++)
			for (size_t s = 0; s < sizeof(slots) / sizeof(slots[0]); s++)
				for (size_t g = 0; g < sizeof(gens) / sizeof(gens[0]); g++) {
					in = (struct sockmig_quic_cid_info){cr, slots[s], gens[g],
									    len};
					cid[len] = 0xee;
					if (!ASSERT_EQ(
						    sockmig_quic_cid_build(&in, cid, sizeof(cid)),
						    len, "build") ||
					    !ASSERT_EQ(cid[len], 0xee, "nothing past the CID") ||
					    !ASSERT_EQ(cid[0] >> 5, cr, "config rotation bits") ||
					    !ASSERT_EQ((cid[0] & 0x1f) + 1, len, "length octet") ||
					    !ASSERT_OK(sockmig_quic_cid_decode(cid, len, &out),
						       "decode") ||
					    !ASSERT_EQ(out.config_id, cr, "config") ||
					    !ASSERT_EQ(out.slot, slots[s], "slot") ||
					    !ASSERT_EQ(out.generation, gens[g] % 4096,
						       "generation") ||
					    !ASSERT_EQ(out.len, len, "length"))
						return SM_FAIL;
				}
	/* two CIDs of one member differ by their nonce alone */
	in = (struct sockmig_quic_cid_info){1, 7, 9, 20};
	if (!ASSERT_EQ(sockmig_quic_cid_build(&in, cid, 20), 20, "build") ||
	    !ASSERT_EQ(sockmig_quic_cid_build(&in, again, 20), 20, "build again") ||
	    !ASSERT_EQ(memcmp(cid, again, 4), 0, "first octet and server ID") ||
	    !ASSERT_TRUE(memcmp(cid + 4, again + 4, 16) != 0, "nonces"))
		return SM_FAIL;
	return SM_PASS;
}

SM_PURE(udp_quic_cid_refuses_bad_input)
{
	struct sockmig_quic_cid_info out, in = {0, 5, 5, 8};
	uint8_t cid[32];

	memset(cid, 0x77, sizeof(cid));
	if (!ASSERT_ERR(
		    sockmig_quic_cid_build(&(struct sockmig_quic_cid_info){0, 5, 5, 7}, cid, 32),
		    EINVAL, "length 7") ||
	    !ASSERT_EQ(cid[0], 0x77, "nothing written") ||
	    !ASSERT_ERR(
		    sockmig_quic_cid_build(&(struct sockmig_quic_cid_info){0, 5, 5, 21}, cid, 32),
		    EINVAL, "length 21") ||
	    !ASSERT_ERR(sockmig_quic_cid_build(&in, cid, 7), EINVAL, "no room") ||
	    !ASSERT_ERR(
		    sockmig_quic_cid_build(&(struct sockmig_quic_cid_info){7, 5, 5, 8}, cid, 32),
		    EINVAL, "config 7") ||
	    !ASSERT_ERR(
		    sockmig_quic_cid_build(&(struct sockmig_quic_cid_info){0, 4096, 5, 8}, cid, 32),
		    EINVAL, "slot 4096") ||
	    !ASSERT_ERR(sockmig_quic_cid_build(NULL, cid, 32), EINVAL, "no description") ||
	    !ASSERT_EQ(cid[0], 0x77, "nothing written") ||
	    !ASSERT_EQ(sockmig_quic_cid_build(&in, cid, 8), 8, "a good one") ||
	    !ASSERT_ERR(sockmig_quic_cid_decode(cid, 7, &out), EINVAL, "decode length 7") ||
	    !ASSERT_ERR(sockmig_quic_cid_decode(cid, 21, &out), EINVAL, "decode length 21") ||
	    !ASSERT_ERR(sockmig_quic_cid_decode(cid, 9, &out), EINVAL, "another length octet") ||
	    !ASSERT_ERR(sockmig_quic_cid_decode(NULL, 8, &out), EINVAL, "no CID") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "no CID"), "the error names it"))
		return SM_FAIL;
	cid[0] |= 0xe0;
	if (!ASSERT_ERR(sockmig_quic_cid_decode(cid, 8, &out), EINVAL, "config rotation 7") ||
	    !ASSERT_TRUE(strcmp(sockmig_udp_mode_str(SOCKMIG_UDP_MODE_QUIC_LB), "quic-lb") == 0,
			 "mode name"))
		return SM_FAIL;
	return SM_PASS;
}
