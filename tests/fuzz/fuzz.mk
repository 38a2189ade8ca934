# The libFuzzer harnesses (GNU make; `make fuzz` runs this with the variables below).
# The library's C sources are compiled again with clang into an object set of their own
# (fuzz-build/obj, fuzz-build/libaal-fuzz.a), instrumented for libFuzzer's coverage and
# with AddressSanitizer + UndefinedBehaviorSanitizer; libaal.la (gcc, maybe with gcc's
# sanitizers) is not linked, so the two compilers' runtimes never meet.  The CUDA and
# oneDNN backends and MPI are left out (config.h is copied without AAL_HAVE_CUDA,
# AAL_HAVE_DNNL and AAL_HAVE_MPI; their names still link, sim/dist as one process).
#
# Given by Makefile.am: srcdir builddir FUZZ_CC FUZZ_DEPS_CFLAGS FUZZ_LIBS FUZZ_LIB_SRC
# FUZZ_TARGETS.
FUZZ_DIR = $(builddir)/fuzz-build
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_FLAGS = -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) -std=c11 -pthread \
	-D_POSIX_C_SOURCE=200809L -I$(FUZZ_DIR)/include -I$(srcdir) -I$(builddir) \
	$(FUZZ_DEPS_CFLAGS) -Wall -Wextra -Wno-unused-function
LIB_C = $(filter %.c,$(FUZZ_LIB_SRC))
LIB_OBJ = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(LIB_C))
BINS = $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_TARGETS))

all: $(BINS)

$(FUZZ_DIR)/include/config.h: $(builddir)/config.h
	@mkdir -p $(@D)
	sed '/AAL_HAVE_CUDA/d; /AAL_HAVE_DNNL/d; /AAL_HAVE_MPI/d' $< >$@

$(FUZZ_DIR)/obj/%.o: $(srcdir)/%.c $(FUZZ_DIR)/include/config.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/libaal-fuzz.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

$(FUZZ_DIR)/harness/%.o: $(srcdir)/tests/fuzz/%.c $(FUZZ_DIR)/include/config.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/harness/%.o $(FUZZ_DIR)/libaal-fuzz.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libaal-fuzz.a $(FUZZ_LIBS)

-include $(LIB_OBJ:.o=.d) $(patsubst %,$(FUZZ_DIR)/harness/%.d,$(FUZZ_TARGETS))

.PHONY: all
.SECONDARY:
