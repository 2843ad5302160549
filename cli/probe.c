// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sockmig probe: what this kernel does, found by behaviour. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sockmig.h"

static void probe_usage(FILE *f)
{
	fprintf(f, "Usage: sockmig probe [-j]\n"
		   "  -j, --json  JSON output\n"
		   "  -h, --help  this text\n");
}

int do_probe(int argc, char **argv)
{
	static const struct cli_opt opts[] = {{0}};
	struct sockmig_probe p;
	int err;

	err = cli_parse("probe", argc, argv, opts, CLI_OPERANDS, probe_usage);
	if (err <= 0)
		return err == 0 ? 0 : 2;
	if (err < argc) {
		cli_error("probe takes no arguments ('%s')", argv[err]);
		return 2;
	}
	err = sockmig_probe(&p);
	if (err) {
		cli_error("probe failed: %s", sockmig_last_error());
		return 1;
	}
	if (json_output) {
		jw_open(NULL, '{');
		jw_str("kernel", p.kernel);
		jw_str("mode", sockmig_mode_str(p.mode));
		jw_str("policy", p.mode == SOCKMIG_MODE_NATIVE	 ? "native"
				 : p.mode == SOCKMIG_MODE_SELECT ? "legacy"
								 : "none");
		jw_str("reason", p.reason);
		jw_str("run", p.mode == SOCKMIG_MODE_NATIVE ? "policy" : "handoff");
		jw_tristate("bpf_select", p.bpf_select);
		jw_tristate("bpf_migrate", p.bpf_migrate);
		jw_tristate("migrate_bpf", p.migrate_bpf);
		jw_tristate("migrate_sysctl", p.migrate_sysctl);
		jw_tristate("migrate_wakeup", p.migrate_wakeup);
		jw_bool("sysctl_file", p.sysctl_file);
		jw_bool("bpffs", p.bpffs);
		jw_i64("bpf_errno", p.bpf_errno);
		jw_close('}');
		jw_end();
	} else {
		printf("kernel           %s\n", p.kernel);
		printf("mode             %s (%s)\n", sockmig_mode_str(p.mode), p.reason);
		printf("sockmig policy   %s\n",
		       p.mode == SOCKMIG_MODE_NATIVE   ? "native: select-or-migrate program"
		       : p.mode == SOCKMIG_MODE_SELECT ? "legacy: select program, exact drain "
							 "(sockmig_member_drain_legacy)"
						       : "none: no usable BPF");
		printf("sockmig run      %s\n",
		       p.mode == SOCKMIG_MODE_NATIVE
			       ? "policy and holder (the kernel migrates)"
			       : "listener hand-off (run keeps the listener; no BPF)");
		printf("select program   %s\n", tristate_str(p.bpf_select));
		printf("migrate program  %s (verifier)\n", tristate_str(p.bpf_migrate));
		printf("migration, bpf   %s\n", tristate_str(p.migrate_bpf));
		printf("migration, sysctl %s\n", tristate_str(p.migrate_sysctl));
		printf("wake-up at close %s%s\n", tristate_str(p.migrate_wakeup),
		       p.migrate_wakeup == SOCKMIG_NO
			       ? " (missing wake-up, CVE-2026-46015: sockmig wakes the targets)"
			       : "");
		printf("sysctl file      %s (not trusted: 5.10.y has the knob only)\n",
		       p.sysctl_file ? "present" : "absent");
		printf("bpffs            %s\n",
		       p.bpffs ? "/sys/fs/bpf" : "not mounted (mount -t bpf bpf /sys/fs/bpf)");
	}
	if (p.mode != SOCKMIG_MODE_NONE)
		return 0;
	/* nothing usable: why, on stderr too (it names a missing capability) */
	if (!json_output)
		cli_error("probe: %s", p.reason);
	return 1;
}
