/* Fuzzes the Tiny ImageNet text parsers (sim/data/tinyimagenet.c: wnids.txt, words.txt,
 * val/val_annotations.txt) through aal_data_scan_tree, on a generated tree of 2 classes
 * (n90000000, n90000001) with 1 train and 1 val image each.
 *
 * The input is the three files' text separated by NUL bytes: WNIDS \0 WORDS \0 ANNOTATIONS.
 * Without a first NUL it is wnids.txt alone (words.txt absent, the tree's annotations);
 * without a second, the tree's annotations.  Properties of a scan that succeeds: every
 * class has a wnid that names its train directory, the wnids are distinct, every train
 * image is labelled with a class in range, every val image's label is the class its
 * annotation line names, and aal_data_fingerprint gives the scan's fingerprint again.
 *
 * FUZZ_WRITE_SEEDS=DIR writes the seed corpus (the generator's own three files, and
 * broken variants) and exits. */
#include "tests/fuzz/fuzz.h"

#include "sim/data/data.h"

static char tree[4200], wnids_path[4300], words_path[4300], annot_path[4300];
static uint8_t *annot_orig;
static size_t annot_orig_len;

static void check_scan(const aal_data_scan *s)
{
  FUZZ_REQUIRE(s->classes >= 1, "%d classes", s->classes);
  for (int k = 0; k < s->classes; k++) {
    FUZZ_REQUIRE(memchr(s->wnids[k], '\0', AAL_DATA_WNID_MAX) != NULL, "wnid %d unterminated", k);
    FUZZ_REQUIRE(s->wnids[k][0] != '\0' && strchr(s->wnids[k], '/') == NULL,
                 "wnid %d is '%s'", k, s->wnids[k]);
    FUZZ_REQUIRE(aal_data_scan_find(s, s->wnids[k]) == k, "wnid %d '%s' not found as %d", k,
                 s->wnids[k], k);
    for (int j = 0; j < k; j++)
      FUZZ_REQUIRE(strcmp(s->wnids[j], s->wnids[k]) != 0, "wnid '%s' twice", s->wnids[k]);
    FUZZ_REQUIRE(s->words[k] != NULL, "words %d NULL", k);
  }
  for (size_t i = 0; i < s->n_train; i++) {
    const int c = s->train_labels[i];
    FUZZ_REQUIRE(c >= 0 && c < s->classes, "train label %d", c);
    char prefix[AAL_DATA_WNID_MAX + 16];
    snprintf(prefix, sizeof prefix, "train/%s/images/", s->wnids[c]);
    FUZZ_REQUIRE(strncmp(s->train_paths[i], prefix, strlen(prefix)) == 0,
                 "train image %s labelled %s", s->train_paths[i], s->wnids[c]);
  }
  for (size_t i = 0; i < s->n_val; i++)
    FUZZ_REQUIRE(s->val_labels[i] >= 0 && s->val_labels[i] < s->classes, "val label %d",
                 s->val_labels[i]);
  uint64_t fp = 0;
  aal_error err;
  FUZZ_REQUIRE(aal_data_fingerprint(tree, &fp, &err) == AAL_OK, "fingerprint: %s", err.msg);
  FUZZ_REQUIRE(fp == s->fingerprint, "fingerprint %016llx, the scan's %016llx",
               (unsigned long long)fp, (unsigned long long)s->fingerprint);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const uint8_t *nul1 = memchr(data, '\0', size);
  const size_t l1 = nul1 != NULL ? (size_t)(nul1 - data) : size;
  fuzz_write(wnids_path, data, l1);
  const uint8_t *words = NULL, *annot = annot_orig;
  size_t lw = 0, la = annot_orig_len;
  if (nul1 != NULL) {
    words = nul1 + 1;
    const uint8_t *nul2 = memchr(words, '\0', size - l1 - 1);
    lw = nul2 != NULL ? (size_t)(nul2 - words) : size - l1 - 1;
    if (nul2 != NULL) {
      annot = nul2 + 1;
      la = size - (size_t)(annot - data);
    }
  }
  if (words != NULL)
    fuzz_write(words_path, words, lw);
  else
    unlink(words_path);
  fuzz_write(annot_path, annot, la);
  aal_data_scan *s = NULL;
  aal_error err;
  if (aal_data_scan_tree(tree, &s, &err) == AAL_OK) {
    check_scan(s);
    /* the val labels are the annotation lines' classes: the generator's when the
     * annotations are the tree's own */
    if (annot == annot_orig)
      for (size_t i = 0; i < s->n_val; i++) {
        char line[256];
        const char *base = strrchr(s->val_paths[i], '/') + 1;
        snprintf(line, sizeof line, "%s\t%s\t", base, s->wnids[s->val_labels[i]]);
        FUZZ_REQUIRE(memmem(annot_orig, annot_orig_len, line, strlen(line)) != NULL,
                     "val image %s labelled %s", base, s->wnids[s->val_labels[i]]);
      }
  }
  aal_data_scan_free(s);
  return 0;
}

static void write_seed(const char *dir, const char *name, const char *a, size_t la,
                       const char *b, size_t lb, const char *c, size_t lc)
{
  char path[4300];
  fuzz_path(path, sizeof path, dir, name);
  FILE *f = fopen(path, "wb");
  FUZZ_SETUP(f != NULL, path);
  fwrite(a, 1, la, f);
  if (b != NULL) {
    fputc('\0', f);
    fwrite(b, 1, lb, f);
  }
  if (c != NULL) {
    fputc('\0', f);
    fwrite(c, 1, lc, f);
  }
  FUZZ_SETUP(fclose(f) == 0, path);
}

static void write_seeds(const char *dir)
{
  size_t lw, lv;
  char *w = (char *)fuzz_read(wnids_path, &lw), *v = (char *)fuzz_read(words_path, &lv);
  const char *a = (const char *)annot_orig;
  const size_t la = annot_orig_len;
  FUZZ_SETUP(w != NULL && v != NULL, "the tree's text files");
  write_seed(dir, "all-three.txt", w, lw, v, lv, a, la);
  write_seed(dir, "wnids-only.txt", w, lw, NULL, 0, NULL, 0);
  write_seed(dir, "wnids-words.txt", w, lw, v, lv, NULL, 0);
  const char crlf[] = "n90000001\r\n\r\n  n90000000 \r\n";
  write_seed(dir, "crlf-blanks.txt", crlf, strlen(crlf), v, lv, a, la);
  const char dup[] = "n90000000\nn90000001\nn90000000\n";
  write_seed(dir, "duplicate-wnid.txt", dup, strlen(dup), v, lv, a, la);
  const char notab[] = "n90000000 no tab here\n";
  write_seed(dir, "words-no-tab.txt", w, lw, notab, strlen(notab), a, la);
  const char unknown[] = "val_0.JPEG\tn99999999\t0\t0\t63\t63\nval_1.JPEG\tn90000000\t0\t0\t63\t63\n";
  write_seed(dir, "annot-unknown-wnid.txt", w, lw, v, lv, unknown, strlen(unknown));
  const char fields[] = "val_0.JPEG\tn90000000\t0\t0\t63\nval_1.JPEG\tn90000001\t0\t0\t63\t6x\n";
  write_seed(dir, "annot-fields.txt", w, lw, v, lv, fields, strlen(fields));
  free(w);
  free(v);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  aal_error err;
  const char *root = fuzz_tmpdir("tinyimagenet");
  fuzz_path(tree, sizeof tree, root, "tree");
  FUZZ_SETUP(aal_gen_data(tree, 2, 1, 1, 1, NULL, &err) == AAL_OK, err.msg);
  fuzz_path(wnids_path, sizeof wnids_path, tree, "wnids.txt");
  fuzz_path(words_path, sizeof words_path, tree, "words.txt");
  fuzz_path(annot_path, sizeof annot_path, tree, "val/val_annotations.txt");
  annot_orig = fuzz_read(annot_path, &annot_orig_len);
  FUZZ_SETUP(annot_orig != NULL, annot_path);
  const char *seeds = getenv("FUZZ_WRITE_SEEDS");
  if (seeds != NULL && *seeds != '\0') {
    write_seeds(seeds);
    exit(0);
  }
  return 0;
}
