# bananafs - one flat Makefile: build, test, bench, install, deps, demo.
#
#   make            build bananafs, bananactl, bananafs-emulator into build/
#   make check      install missing packages, then unit, mount and sanitizer tests
#   make demo       the same as `sh tools/demo.sh`: install missing packages, build,
#                   mount ./banana against the real API (key set) or the emulator
#   make SAN=1      build with ASan+UBSan into build-san/
#   make check-fresh  the README's two commands in a throwaway Debian root (slow)
#
# Targets that install packages first (deps, check, bench, demo) build in a
# second make run, so the pkg-config flags below are read after the -dev
# packages are there.

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR   = $(PREFIX)/bin
MANDIR   = $(PREFIX)/share/man

CC      ?= cc
PKGS     = fuse3 libcurl libcjson libxxhash sqlite3 inih libpng libjpeg libwebp zlib libpq
EMUPKGS  = libmicrohttpd libcjson libpng libjpeg zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
EMU_CFLAGS := $(shell pkg-config --cflags $(EMUPKGS) 2>/dev/null)
EMU_LIBS   := $(shell pkg-config --libs $(EMUPKGS) 2>/dev/null)
TEST_LIBS  := $(shell pkg-config --libs cmocka 2>/dev/null)

# A build without the -dev packages would fail on a missing header: say what to do instead.
ifeq ($(PKG_LIBS),)
ifneq ($(filter-out deps test-deps check test check-long check-fresh fuzz bench demo undemo clean uninstall,$(or $(MAKECMDGOALS),all)),)
$(error the build packages are missing (pkg-config found no $(PKGS)): run `sh tests/deps.sh` or `make deps` first)
endif
endif

WARN     = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
CFLAGS  ?= -O2 -g
CPPFLAGS += -I. -D_GNU_SOURCE -DFUSE_USE_VERSION=314
LDLIBS   = -lpthread -lm

ifeq ($(SAN),1)
BUILD   ?= build-san
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
BUILD   ?= build
endif

LIB_SRC  = $(wildcard api/*.c cache/*.c)
FS_SRC   = $(wildcard fs/*.c)
CTL_SRC  = $(wildcard tools/bananactl/*.c)
EMU_SRC  = $(wildcard tools/emulator/*.c)
UNIT_SRC = $(wildcard tests/unit/test_*.c)

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
FS_OBJ   = $(FS_SRC:%.c=$(BUILD)/%.o)
CTL_OBJ  = $(CTL_SRC:%.c=$(BUILD)/%.o)
EMU_OBJ  = $(EMU_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

LIB      = $(BUILD)/libbanana.a
PROGS    = $(BUILD)/bananafs $(BUILD)/bananactl $(BUILD)/bananafs-emulator
MANPAGES = $(wildcard man/*.1 man/*.5)

all: $(PROGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tools/emulator/%.o: tools/emulator/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(EMU_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bananafs: $(FS_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

$(BUILD)/bananactl: $(CTL_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

$(BUILD)/bananafs-emulator: $(EMU_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(EMU_LIBS) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(PKG_CFLAGS) -MMD -MP -o $@ $< $(filter %.o,$^) $(LIB) $(TEST_LIBS) $(PKG_LIBS) $(LDFLAGS) $(LDLIBS)

# Unit tests of the FUSE-free parts of fs/ link those objects too.
$(BUILD)/tests/test_jobplan: $(BUILD)/fs/jobplan.o

unit: $(UNIT_BIN)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# --- setup -----------------------------------------------------------------

deps:
	@sh tests/deps.sh

test-deps:
	@sh tests/deps.sh test

# --- tests -----------------------------------------------------------------

check test: test-deps
	@sh tests/run.sh short

check-long: test-deps
	@sh tests/run.sh long

fuzz: test-deps
	@sh tests/fuzz/run.sh long

bench: test-deps
	@$(MAKE) --no-print-directory all
	@sh tests/bench/run.sh

demo:
	@sh tools/demo.sh

check-fresh:
	@sh tests/fresh/run.sh $(SUITES)

undemo:
	@sh tools/undemo.sh

# --- install ---------------------------------------------------------------

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5
	install -m 755 $(PROGS) $(DESTDIR)$(BINDIR)/
	for m in $(MANPAGES); do s=$${m##*.}; install -m 644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,bananafs bananactl bananafs-emulator)
	for m in $(MANPAGES); do s=$${m##*.}; rm -f $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}; done

clean:
	rm -rf build build-san build-fuzz

.PHONY: all unit deps test-deps check test check-long check-fresh fuzz bench demo undemo install uninstall clean
