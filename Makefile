# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# sockmig: make, make check, make demo, make bench, make asan-check, make lint
VERSION    := 0.1.0
OUTPUT     ?= .output
CC         ?= cc
CLANG      ?= clang
BPFTOOL    ?= bpftool
ARCH       := $(shell uname -m | sed 's/x86_64/x86/; s/aarch64/arm64/')
MULTIARCH  := $(shell $(CC) -print-multiarch 2>/dev/null)

CFLAGS     ?= -O2 -g
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PRELOADDIR ?= $(LIBDIR)
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
# Flags the build needs whatever CFLAGS the caller gives.
SM_CFLAGS  := -std=gnu11 -Wall -Wextra -Werror -Wno-missing-field-initializers -Wno-format-truncation \
              -D_GNU_SOURCE -DSOCKMIG_VERSION='"$(VERSION)"' -DSOCKMIG_PRELOADDIR='"$(PRELOADDIR)"' \
              -Iinclude -Ibpf -I$(OUTPUT) $(CPPFLAGS)
LDLIBS     += -lbpf -lelf -lz -lpthread
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -Ibpf \
              $(if $(MULTIARCH),-I/usr/include/$(MULTIARCH))

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

# lib/*_test.c: white-box tests of the library's pure parts, linked into
# the test runner with the file they test, never into the library.
LIB_TESTS  := $(wildcard lib/*_test.c)
LIB_SRCS   := $(filter-out $(LIB_TESTS),$(wildcard lib/*.c))
CLI_SRCS   := $(wildcard cli/*.c)
TEST_SRCS  := $(wildcard tests/*.c) $(LIB_TESTS)
BENCH_SRCS := $(wildcard bench/*.c)
BPF_SRCS   := $(wildcard bpf/*.bpf.c) $(wildcard tests/bpf/*.bpf.c)
SKELS      := $(patsubst %.bpf.c,$(OUTPUT)/%.skel.h,$(notdir $(BPF_SRCS)))
PUBLIC_HDRS := include/sockmig.h $(wildcard include/sockmig/*.h)

LIB_OBJS   := $(patsubst lib/%.c,$(OUTPUT)/lib/%.o,$(LIB_SRCS))
CLI_OBJS   := $(patsubst cli/%.c,$(OUTPUT)/cli/%.o,$(CLI_SRCS))
TEST_OBJS  := $(patsubst tests/%.c,$(OUTPUT)/tests/%.o,$(wildcard tests/*.c)) \
              $(patsubst lib/%.c,$(OUTPUT)/tests/lib/%.o,$(LIB_TESTS)) \
              $(OUTPUT)/lib/table_build.o
BENCH_OBJS := $(patsubst bench/%.c,$(OUTPUT)/bench/%.o,$(BENCH_SRCS))

LIBA       := $(OUTPUT)/libsockmig.a
LIBSO      := $(OUTPUT)/libsockmig.so
# The soname, beside it: what sockmig and the test runner load from their
# own directory (rpath $ORIGIN), so that a checkout runs without install.
LIBSO0     := $(OUTPUT)/libsockmig.so.0
SOCKMIG    := $(OUTPUT)/sockmig
TESTRUN    := $(OUTPUT)/test_sockmig
PRELOAD    := $(OUTPUT)/libsockmig-preload.so
PRELOAD_SRCS := $(wildcard preload/*.c)
# The public header compiled alone (tests/header/).
HEADER_CHECK := $(patsubst tests/header/%.c,$(OUTPUT)/tests/header/%.o,$(wildcard tests/header/*.c))
# The programs the tests run (tests/servers/), built next to the runner.
TEST_SERVERS := $(addprefix $(OUTPUT)/tests/servers/,prefork shim_prog static_server \
                  dynamic_server udp_echo mixed_echo udp_conn)
# The real-QUIC case's programs: python, run in scripts/quic-root's tree.
TEST_SERVERS += $(addprefix $(OUTPUT)/tests/servers/,quic_server.py quic_client.py)
TEST_SERVERS += $(addprefix $(OUTPUT)/tests/servers/,quic_conns_server.py quic_conns_client.py)
TEST_SERVERS += $(OUTPUT)/tests/servers/h3_load.py
# The C QUIC client, compiled in that tree (make quic-client), never by all;
# check rebuilds it when it is there and its source changed.
QUIC_NGTCP2 := $(OUTPUT)/tests/servers/quic_conns_ngtcp2

.PHONY: all deps check demo bench asan asan-check lint format format-check cppcheck \
        clean install deb check-deb check-kernels
.DELETE_ON_ERROR:
.SECONDARY:

all: $(LIBA) $(LIBSO) $(LIBSO0) $(SOCKMIG) $(TESTRUN) $(TEST_SERVERS) $(if $(PRELOAD_SRCS),$(PRELOAD)) \
     $(HEADER_CHECK) \
     $(patsubst man/%,$(OUTPUT)/man/man8/%,$(wildcard man/*.8)) \
     $(patsubst man/%,$(OUTPUT)/man/man3/%,$(wildcard man/*.3))

# The man pages laid out as man(1) searches them, for a checkout:
# MANPATH=$PWD/.output/man: man sockmig-run
$(OUTPUT)/man/man8/%.8: man/%.8
	$(Q)install -D -m 0644 $< $@
$(OUTPUT)/man/man3/%.3: man/%.3
	$(Q)install -D -m 0644 $< $@

# Installs what the build and the tests need on Debian 12 (as root), and
# mounts bpffs; does nothing when all is there.
deps:
	$(Q)scripts/deps

$(OUTPUT) $(OUTPUT)/lib $(OUTPUT)/cli $(OUTPUT)/tests $(OUTPUT)/bench $(OUTPUT)/bpf:
	$(Q)mkdir -p $@

$(OUTPUT)/bpf/%.bpf.o: bpf/%.bpf.c bpf/policy.h bpf/udp.h bpf/udp_maps.h bpf/aes128.h bpf/quic_enc.h | $(OUTPUT)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# The legacy policy is policy.bpf.c compiled again with SOCKMIG_LEGACY.
$(OUTPUT)/bpf/policy_legacy.bpf.o: bpf/policy.bpf.c

$(OUTPUT)/bpf/%.bpf.o: tests/bpf/%.bpf.c bpf/udp.h bpf/udp_maps.h | $(OUTPUT)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUTPUT)/%.skel.h: $(OUTPUT)/bpf/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

$(OUTPUT)/lib/%.o: lib/%.c $(PUBLIC_HDRS) $(wildcard lib/*.h) $(SKELS) | $(OUTPUT)/lib
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(SM_CFLAGS) -Ilib -fPIC -fvisibility=hidden -c $< -o $@

$(OUTPUT)/cli/%.o: cli/%.c $(PUBLIC_HDRS) $(wildcard cli/*.h bench/*.h) | $(OUTPUT)/cli
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(SM_CFLAGS) -Ibench -c $< -o $@

$(OUTPUT)/tests/%.o: tests/%.c $(PUBLIC_HDRS) $(wildcard tests/*.h cli/diag.h) $(SKELS) \
		$(OUTPUT)/tests/cases.inc | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(SM_CFLAGS) -Itests -Ibench -Icli -I$(OUTPUT)/tests -c $< -o $@

$(OUTPUT)/tests/lib/%.o: lib/%.c $(PUBLIC_HDRS) $(wildcard lib/*.h tests/*.h) $(SKELS) \
		$(OUTPUT)/tests/cases.inc | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(SM_CFLAGS) -Ilib -Itests -I$(OUTPUT)/tests -c $< -o $@

$(OUTPUT)/bench/%.o: bench/%.c $(PUBLIC_HDRS) $(wildcard bench/*.h) | $(OUTPUT)/bench
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(SM_CFLAGS) -Ibench -c $< -o $@

# The LD_PRELOAD shim: the library linked in, only its interposers exported.
$(PRELOAD): $(PRELOAD_SRCS) $(wildcard preload/*.h) preload/preload.map $(LIB_OBJS) \
		$(PUBLIC_HDRS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $(SM_CFLAGS) -fPIC -shared -fvisibility=hidden -Wl,-z,defs \
		-Wl,--version-script=preload/preload.map \
		$(PRELOAD_SRCS) $(LIB_OBJS) -o $@ $(LDFLAGS) $(LDLIBS) -ldl

# The public header compiled as a user's file would include it: alone,
# ISO C11 without _GNU_SOURCE, every warning an error (tests/header/).
$(OUTPUT)/tests/header/%.o: tests/header/%.c $(PUBLIC_HDRS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -std=c11 -Wall -Wextra -Werror -Iinclude -c $< -o $@

# The test table: every SM_TEST(name) in tests/*.c, in file order, as
# SM_CASE(name, 0, 0); SM_PURE(name) (no root, no netns) as
# SM_CASE(name, 1, 0); SM_LONG(name, SECS) (a time limit of its own) as
# SM_CASE(name, 0, SECS).
$(OUTPUT)/tests/cases.inc: $(TEST_SRCS) | $(OUTPUT)/tests
	$(call msg,GEN,$@)
	$(Q)sed -n -e 's/^SM_PURE(\([a-z0-9_]*\).*/SM_CASE(\1, 1, 0)/p;t' \
		-e 's/^SM_LONG(\([a-z0-9_]*\), *\([0-9]*\)).*/SM_CASE(\1, 0, \2)/p;t' \
		-e 's/^SM_[A-Z_]*(\([a-z0-9_]*\).*/SM_CASE(\1, 0, 0)/p' $(TEST_SRCS) > $@

# The test programs, with the flags the tests once gave cc at run time
# whatever CFLAGS says (never a sanitizer build: the shim is preloaded into
# them); the static server must be static (no LD_PRELOAD can reach it).
$(OUTPUT)/tests/servers/prefork: tests/servers/prefork.c | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) -O2 -Wall -o $@ $<
$(OUTPUT)/tests/servers/shim_prog: tests/servers/shim_prog.c | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) -O2 -Wall -o $@ $< -ldl -lpthread
$(OUTPUT)/tests/servers/static_server: tests/servers/static_server.c | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) -static -O2 -o $@ $< && ! ldd $@ >/dev/null 2>&1
$(OUTPUT)/tests/servers/dynamic_server: tests/servers/static_server.c | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) -O2 -o $@ $<
$(OUTPUT)/tests/servers/%.py: tests/servers/%.py | $(OUTPUT)/tests
	$(call msg,CP,$@)
	$(Q)mkdir -p $(@D) && cp $< $@
$(OUTPUT)/tests/servers/udp_echo: tests/servers/udp_echo.c | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) -O2 -Wall -o $@ $<
$(OUTPUT)/tests/servers/mixed_echo: tests/servers/mixed_echo.c | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) -O2 -Wall -o $@ $<
$(OUTPUT)/tests/servers/udp_conn: tests/servers/udp_conn.c | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CC) -O2 -Wall -o $@ $<

$(LIBA): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)$(AR) rcs $@ $^

$(LIBSO): $(LIB_OBJS) lib/libsockmig.map
	$(call msg,LD,$@)
	$(Q)$(CC) -shared -Wl,--version-script=lib/libsockmig.map -Wl,-soname,libsockmig.so.0 \
		$(LDFLAGS) $(LIB_OBJS) -o $@ $(LDLIBS)

$(LIBSO0): $(LIBSO)
	$(Q)ln -sf libsockmig.so $@

# sockmig and the test runner use the public API only: linked against the
# shared library, found beside them ($ORIGIN) in the build tree. The tests
# link the command's sock_diag code (cli/diag.c) too.
CMD_OBJS   := $(CLI_OBJS) $(filter-out $(OUTPUT)/bench/main.o,$(BENCH_OBJS))
$(SOCKMIG): $(CMD_OBJS) $(LIBSO) | $(LIBSO0)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -Wl,-rpath,'$$ORIGIN' $(CMD_OBJS) -L$(OUTPUT) -lsockmig -o $@ $(LDLIBS)

TESTRUN_OBJS := $(TEST_OBJS) $(OUTPUT)/cli/diag.o \
                $(filter-out $(OUTPUT)/bench/main.o,$(BENCH_OBJS))
$(TESTRUN): $(TESTRUN_OBJS) $(LIBSO) | $(LIBSO0)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -Wl,-rpath,'$$ORIGIN' $(TESTRUN_OBJS) -L$(OUTPUT) -lsockmig -o $@ \
		$(LDLIBS)

# The installed sockmig: linked again, without the build tree's $ORIGIN,
# with a RUNPATH of LIBDIR only where the loader does not look by itself
# (none for /usr/lib/<triplet>: the Debian packages).
SYS_LIBDIRS  := /lib /usr/lib /lib64 /usr/lib64 $(if $(MULTIARCH),/lib/$(MULTIARCH) /usr/lib/$(MULTIARCH))
INST_RPATH   := $(if $(filter $(SYS_LIBDIRS),$(patsubst %/,%,$(LIBDIR))),,-Wl,-rpath,$(LIBDIR))
.PHONY: $(OUTPUT)/install/sockmig
$(OUTPUT)/install/sockmig: $(CMD_OBJS) $(LIBSO) | $(LIBSO0)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(INST_RPATH) $(CMD_OBJS) -L$(OUTPUT) -lsockmig -o $@ $(LDLIBS)

# The README's test command. T=name runs the cases whose name contains it.
check: deps all $(if $(wildcard $(QUIC_NGTCP2)),$(QUIC_NGTCP2))
	$(Q)$(TESTRUN) $(T)

# The kernel matrix: Ubuntu 20.04's 5.4, Debian 11's 5.10, Ubuntu 22.04's
# 5.15, Debian 12's 6.1, 13's 6.12 booted in QEMU, and the host; one
# kernel x result table (scripts/kernels). FULL=1 runs every set,
# KERNELS="6.1 host" and SETS="probe demo" choose.
check-kernels: deps all
	$(Q)scripts/kernels $(if $(FULL),--full) $(if $(KERNELS),-k "$(KERNELS)") \
		$(if $(SETS),-s "$(SETS)") $(if $(LOCK),-l "$(LOCK)")

# The Debian 13 tree of the real-QUIC case (tests/test_udp_quic_real.c),
# made once under ~/.cache/sockmig-quic; never made by check.
.PHONY: quic-root
quic-root:
	$(Q)scripts/quic-root >/dev/null

# Real QUIC under a flip every 100 ms (tests/test_udp_quic_storm.c) for
# SECS seconds (default 60, at most 120): learn on receive, then the two
# baselines (learn by claim, plain SO_REUSEPORT). Needs make quic-root.
.PHONY: bench-quic
bench-quic: deps all
	$(Q)SOCKMIG_QUIC_STORM_SECS=$(or $(SECS),60) $(TESTRUN) -v udp_quic_storm

# Real QUIC, 1,000 established connections at 10 datagrams/s each across
# a flip every second (tests/test_udp_quic_conns.c) for SECS seconds
# (default 65: 15 s of ramp, then 50 flips with every connection up; at
# most 140), N connections (default 1000): learn on receive, quic-lb, then
# plain SO_REUSEPORT. CLIENT=ngtcp2 (the default: C, libngtcp2, compiled in
# the tree) or aioquic (python) opens them; SERVERS aioquic server
# processes (default 2) share the generations out. Needs make quic-root.
CLIENT ?= ngtcp2
SERVERS ?= 2
$(QUIC_NGTCP2): tests/servers/quic_conns_ngtcp2.c scripts/quic-root | $(OUTPUT)
	$(call msg,CC-TREE,$@)
	$(Q)scripts/quic-root --cc $< $@ >/dev/null

# The C client alone, for the suite's udp_quic_real_ngtcp2 cases (CI).
.PHONY: quic-client
quic-client: $(QUIC_NGTCP2)

.PHONY: bench-quic-conns
bench-quic-conns: deps all $(if $(filter ngtcp2,$(CLIENT)),$(QUIC_NGTCP2))
	$(Q)SOCKMIG_QUIC_CONNS_SECS=$(or $(SECS),65) $(if $(N),SOCKMIG_QUIC_CONNS_N=$(N)) \
		SOCKMIG_QUIC_CONNS_CLIENT=$(CLIENT) SOCKMIG_QUIC_CONNS_SERVERS=$(SERVERS) \
		$(TESTRUN) -v udp_quic_conns

# The README's main job: the side-by-side reset count in a private netns.
demo: deps $(SOCKMIG)
	$(Q)$(SOCKMIG) demo

bench: deps $(SOCKMIG) $(PRELOAD)
	$(Q)$(SOCKMIG) bench --short

# Sanitizer build in its own output tree, then the whole suite under it; the
# suite's cases start .output's sockmig, shim and servers, so `all` first.
asan:
	$(Q)$(MAKE) --no-print-directory OUTPUT=$(OUTPUT)/asan \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" all
asan-check: deps all asan $(if $(wildcard $(QUIC_NGTCP2)),$(QUIC_NGTCP2))
	$(Q)ASAN_OPTIONS=detect_leaks=1 $(OUTPUT)/asan/test_sockmig $(T)

FORMAT_SRCS = $(wildcard include/*.h include/sockmig/*.h lib/*.[ch] bpf/*.[ch] cli/*.[ch] tests/*.[ch] tests/servers/*.c \
                         tests/bpf/*.c tests/header/*.c bench/*.[ch] preload/*.[ch])
format:
	$(Q)clang-format -i $(FORMAT_SRCS)
format-check:
	$(call msg,FORMAT,check)
	$(Q)clang-format --dry-run --Werror $(FORMAT_SRCS)
cppcheck: $(SKELS) $(OUTPUT)/tests/cases.inc
	$(call msg,CPPCHECK,tree)
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
		--inline-suppr --suppress=missingIncludeSystem --std=c11 -D__linux__ \
		-D_GNU_SOURCE -Iinclude -Ibpf -Ilib -Itests -Ibench -Icli -I$(OUTPUT) \
		--suppress=unknownMacro:lib/probe.c --suppress=unknownMacro:lib/pin.c \
		lib cli tests/*.c tests/servers/*.c bench $(wildcard preload)
lint: format-check cppcheck
	$(call msg,SHCHECK,scripts)
	$(Q)if command -v shellcheck >/dev/null; then \
		shellcheck scripts/* .ci/run tests/*.sh && shellcheck -s bash completion/sockmig; fi

# The library, its development files, the shim, the command, the man pages
# and the pkg-config file. LIBDIR is baked into sockmig (where run finds
# the shim) and into libsockmig.pc.
install: all $(OUTPUT)/libsockmig.pc $(OUTPUT)/install/sockmig
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PRELOADDIR) \
		$(DESTDIR)$(INCLUDEDIR)/sockmig \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(COMPLETIONDIR)
	install -m 0755 $(OUTPUT)/install/sockmig $(DESTDIR)$(BINDIR)/
	install -m 0644 completion/sockmig $(DESTDIR)$(COMPLETIONDIR)/
	install -m 0644 $(LIBA) $(DESTDIR)$(LIBDIR)/
	install -m 0644 $(LIBSO) $(DESTDIR)$(LIBDIR)/libsockmig.so.$(VERSION)
	ln -sf libsockmig.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsockmig.so.0
	ln -sf libsockmig.so.0 $(DESTDIR)$(LIBDIR)/libsockmig.so
	install -m 0644 $(PRELOAD) $(DESTDIR)$(PRELOADDIR)/
	install -m 0644 $(OUTPUT)/libsockmig.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 0644 include/sockmig.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 0644 include/sockmig/*.h $(DESTDIR)$(INCLUDEDIR)/sockmig/
	install -m 0644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/*.3 $(DESTDIR)$(MANDIR)/man3/

$(OUTPUT)/libsockmig.pc: libsockmig.pc.in Makefile | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' $< > $@

# Debian packages (sockmig, libsockmig0, libsockmig-dev) built from a copy
# of the tree under .output/deb, where the .deb files land.
deb:
	$(Q)scripts/deb build

# Builds the packages, installs them, uses them as a user would, removes them.
check-deb:
	$(Q)scripts/deb check

clean:
	$(call msg,CLEAN,$(OUTPUT))
	$(Q)rm -rf $(OUTPUT)
