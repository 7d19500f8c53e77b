/* `peftbench submit`: GLUE leaderboard files from test-split predictions.
 *
 * Writes its own data folder (small test files in the official layouts of all nine tasks and
 * the diagnostic set) and prediction files in the run/eval contract format, calls
 * pb_cmd_submit and compares the exact bytes of all 11 files; checks the label mapping per
 * task (WNLI 0/1 with 1 = entailment, RTE/QNLI/MNLI/AX strings), STS-B numbers, every
 * refusal (one stderr line naming the file, exit 1, nothing written), usage errors (exit 2),
 * results-JSONL sources; then a complete submission at the real sizes, with the row counts
 * of the shared GLUE test files (../shared/data/glue) where they exist. Run from the repo root. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/status.h"
#include "harness/glue.h"
#include "harness/submit.h"
#include "tests/check.h"

static const char *REAL = "../shared/data/glue";
static char T[256];      /* temporary root */
static char DATA[300];   /* T/data: the small official-format folder */

static const char *FILES[11] = {"CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "MNLI-m.tsv", "MNLI-mm.tsv",
                                "QNLI.tsv", "QQP.tsv",   "RTE.tsv",  "WNLI.tsv",  "AX.tsv"};

/* ---------------------------------------------------------------- helpers */

static void mkdirs(const char *path) { /* parents of path */
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(tmp, 0755);
      *p = '/';
    }
}

/* writes T/rel (parents created); returns the static path of the last call in a rotating set */
static const char *wfile(const char *rel, const char *text) {
  static char paths[64][512];
  static int k = 0;
  char *p = paths[k++ % 64];
  snprintf(p, 512, "%s/%s", T, rel);
  mkdirs(p);
  FILE *f = fopen(p, "wb");
  if (!f) {
    printf("FAIL cannot write %s\n", p);
    exit(1);
  }
  fwrite(text, 1, strlen(text), f);
  fclose(f);
  return p;
}

static char *rfile(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  size_t r = fread(b, 1, (size_t)n, f);
  b[r] = 0;
  fclose(f);
  return b;
}

static int exists(const char *dir, const char *file) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, file);
  struct stat st;
  return stat(p, &st) == 0;
}

static int n_files_in(const char *dir) {
  int n = 0;
  for (int i = 0; i < 11; i++) n += exists(dir, FILES[i]);
  return n;
}

static char g_err[8192], g_out[16384];

/* pb_cmd_submit("submit", args..., NULL) with stdout/stderr captured into g_out/g_err */
static int submit(const char *first, ...) {
  char *argv[64];
  int argc = 0;
  argv[argc++] = "submit";
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a && argc < 63; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc] = NULL;
  char ep[512], op[512];
  snprintf(ep, sizeof ep, "%s/stderr.txt", T);
  snprintf(op, sizeof op, "%s/stdout.txt", T);
  fflush(stdout);
  fflush(stderr);
  int se = dup(2), so = dup(1);
  FILE *fe = fopen(ep, "wb"), *fo = fopen(op, "wb");
  dup2(fileno(fe), 2);
  dup2(fileno(fo), 1);
  int rc = pb_cmd_submit(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(se, 2);
  dup2(so, 1);
  close(se);
  close(so);
  fclose(fe);
  fclose(fo);
  char *e = rfile(ep), *o = rfile(op);
  snprintf(g_err, sizeof g_err, "%s", e ? e : "");
  snprintf(g_out, sizeof g_out, "%s", o ? o : "");
  free(e);
  free(o);
  return rc;
}

static int n_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* exit `code`, exactly one stderr line containing every given fragment, nothing new in dir */
static void expect_refusal(const char *what, int rc, int code, const char *dir, int files_before,
                           const char *frag1, const char *frag2) {
  printf("  %-34s -> %d %s", what, rc, g_err[0] ? g_err : "(no message)\n");
  CHECK(rc == code, "%s: exit %d, want %d", what, rc, code);
  CHECK(n_lines(g_err) == 1, "%s: %d stderr lines, want 1: %s", what, n_lines(g_err), g_err);
  CHECK(!frag1 || strstr(g_err, frag1), "%s: message lacks '%s': %s", what, frag1, g_err);
  CHECK(!frag2 || strstr(g_err, frag2), "%s: message lacks '%s': %s", what, frag2, g_err);
  if (dir) CHECK(n_files_in(dir) == files_before, "%s: files written despite the refusal", what);
}

static void expect_file(const char *dir, const char *file, const char *want) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, file);
  char *got = rfile(p);
  CHECK(got && strcmp(got, want) == 0, "%s: bytes differ\n--- got\n%s--- want\n%s", p, got ? got : "(missing)",
        want);
  free(got);
}

/* ---------------------------------------------------------------- data */

static const char MNLI_TEST_HDR[] =
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\n";

static void write_data(void) {
  wfile("data/CoLA/test.tsv",
        "index\tsentence\n0\tBill whistled past the house.\n1\tThe car honked its way down the road.\n"
        "2\tBill pushed Harry off the sofa.\n");
  wfile("data/SST-2/test.tsv",
        "index\tsentence\n0\tuneasy mishmash of styles and genres .\n1\tthis film 's relationship to actual "
        "tension is the same as what christmas-tree flocking in a spray can is to actual snow .\n"
        "2\tby the end of no such thing the audience , like beatrice , has a watchful affection for the monster .\n"
        "3\tdirector rob marshall went out gunning to make a great one .\n");
  wfile("data/MRPC/test.tsv",
        "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1089874\t1089925\tPCCW's chief operating officer spoke.\t"
        "Arena will replace him.\n1\t3019446\t3019327\tThe world's two largest makers merged.\tTwo makers merged.\n"
        "2\t1945605\t1945824\tAccording to the survey, it fell.\tThe survey said it fell.\n");
  wfile("data/STS-B/test.tsv",
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\n"
        "0\tmain-captions\tMSRvid\t2012test\t0024\tnone\tnone\tA girl is styling her hair.\tA girl is brushing her hair.\n"
        "1\tmain-captions\tMSRvid\t2012test\t0033\tnone\tnone\tA group of men play soccer.\tA group of boys play soccer.\n"
        "2\tmain-captions\tMSRvid\t2012test\t0045\tnone\tnone\tOne woman is measuring.\tA woman is cutting.\n"
        "3\tmain-captions\tMSRvid\t2012test\t0063\tnone\tnone\tA man is cutting up a cucumber.\tA man is slicing.\n");
  char buf[2048];
  snprintf(buf, sizeof buf,
           "%s0\t31193\t31193n\tgovernment\tx\ty\tx\ty\tHe said hello.\tHe spoke.\n"
           "1\t101457\t101457e\ttelephone\tx\ty\tx\ty\tyou know during the season\tYou lose the things\n"
           "2\t134793\t134793e\tfiction\tx\ty\tx\ty\tOne of our number will go.\tA member will go.\n",
           MNLI_TEST_HDR);
  wfile("data/MNLI/test_matched.tsv", buf);
  snprintf(buf, sizeof buf,
           "%s0\t75290\t75290c\tletters\tx\ty\tx\ty\tYour contribution helped.\tIt was of no help.\n"
           "1\t133794\t133794c\tverbatim\tx\ty\tx\ty\tThe answer is yes.\tThe answer is no.\n",
           MNLI_TEST_HDR);
  wfile("data/MNLI/test_mismatched.tsv", buf);
  wfile("data/QNLI/test.tsv",
        "index\tquestion\tsentence\n0\tWhat organization is devoted to Jihad?\tSome decades prior, it was.\n"
        "1\tIn what century was the Yarrow-Schlick-Tweedy balancing system used?\tIn the late 19th century.\n"
        "2\tThe largest brand of what?\tIt is the largest brand.\n");
  wfile("data/QQP/test.tsv",
        "id\tquestion1\tquestion2\n0\tWould the idea of Trump and Putin work?\tWill Putin help Trump?\n"
        "1\tWhat are the top ten consumer-facing applications?\tWhat are the top ten apps?\n"
        "2\tWhat is the best way to learn C?\tHow do I learn C?\n");
  wfile("data/RTE/test.tsv",
        "index\tsentence1\tsentence2\n0\tMangla was summoned after Nidhi.\tNidhi was the first witness.\n"
        "1\tAuthorities rescued 10 miners.\tTen miners were rescued.\n2\tThe cat sat.\tA dog sat.\n"
        "3\tOil prices fell.\tOil prices rose.\n");
  wfile("data/WNLI/test.tsv",
        "index\tsentence1\tsentence2\n0\tMaude and Dora had seen the trains.\tDora had seen the trains.\n"
        "1\tThe drain is clogged with hair. It has to be cleaned.\tThe hair has to be cleaned.\n"
        "2\tJane knocked on Susan's door but she did not answer.\tSusan did not answer.\n");
  wfile("data/diagnostic/diagnostic.tsv",
        "index\tsentence1\tsentence2\n0\tThe cat sat on the mat.\tThe cat did not sit on the mat.\n"
        "1\tThe cat did not sit on the mat.\tThe cat sat on the mat.\n"
        "2\tWhen you've got no snow, it's really hard to learn.\tIt's hard to learn without snow."); /* no final \n */
}

#define H2(a, b) "index\tgold\tprediction\tlogit_" a "\tlogit_" b "\n"
#define H01 H2("0", "1")
#define HNLI H2("entailment", "not_entailment")
#define HMNLI "index\tgold\tprediction\tlogit_entailment\tlogit_neutral\tlogit_contradiction\n"
#define HSTS "index\tgold\tprediction\n"

/* prediction files for all 11 targets (some rows out of order: the output is sorted) */
static const char *P_COLA = H01 "0\t\t1\t-1.5\t2.25\n1\t\t0\t0.75\t-0.125\n2\t\t1\t0.5\t0.5000001\n";
static const char *P_SST2 = H01 "0\t\t0\t3\t-3\n1\t\t1\t-0.25\t0.25\n2\t\t1\t1e-3\t2e-3\n3\t\t0\t1\t1\n"; /* tie */
static const char *P_MRPC = H01 "2\t\t0\t0.9\t0.1\n0\t\t1\t0.1\t0.9\n1\t\t1\t-2\t-1\n";
static const char *P_STSB = HSTS "3\t\t5.25\n0\t\t-0.25\n2\t\t4.99951\n1\t\t2.718281828\n";
static const char *P_MNLIM = HMNLI "0\t\tentailment\t2\t1\t0\n1\t\tneutral\t0\t2\t1\n2\t\tcontradiction\t0\t1\t2\n";
static const char *P_MNLIMM = HMNLI "1\t\tentailment\t1.5\t-1\t-1\n0\t\tcontradiction\t-1\t-1\t1.5\n";
static const char *P_QNLI = HNLI "0\t\tnot_entailment\t-1\t1\n1\t\tentailment\t1\t-1\n2\t\tentailment\t0.3\t0.2\n";
static const char *P_QQP = H01 "0\t\t0\t1\t0\n1\t\t1\t0\t1\n2\t\t1\t-5\t5\n";
static const char *P_RTE = HNLI "2\t\tentailment\t1\t0\n0\t\tnot_entailment\t0\t1\n3\t\tnot_entailment\t-1\t0\n"
                                "1\t\tentailment\t0.5\t-0.5\n";
/* WNLI: "1" = entailment; logit_1 is the larger where the prediction is 1 */
static const char *P_WNLI = H01 "0\t\t1\t-0.5\t0.5\n1\t\t0\t0.5\t-0.5\n2\t\t1\t0\t3\n";
static const char *P_AX = HMNLI "0\t\tcontradiction\t-1\t0\t1\n1\t\tcontradiction\t-1\t0\t1\n2\t\tentailment\t1\t0\t-1";

static const char *W_COLA = "index\tprediction\n0\t1\n1\t0\n2\t1\n";
static const char *W_SST2 = "index\tprediction\n0\t0\n1\t1\n2\t1\n3\t0\n";
static const char *W_MRPC = "index\tprediction\n0\t1\n1\t1\n2\t0\n";
static const char *W_STSB = "index\tprediction\n0\t0.000\n1\t2.718\n2\t5.000\n3\t5.000\n";
static const char *W_MNLIM = "index\tprediction\n0\tentailment\n1\tneutral\n2\tcontradiction\n";
static const char *W_MNLIMM = "index\tprediction\n0\tcontradiction\n1\tentailment\n";
static const char *W_QNLI = "index\tprediction\n0\tnot_entailment\n1\tentailment\n2\tentailment\n";
static const char *W_QQP = "index\tprediction\n0\t0\n1\t1\n2\t1\n";
static const char *W_RTE = "index\tprediction\n0\tnot_entailment\n1\tentailment\n2\tentailment\n3\tnot_entailment\n";
static const char *W_WNLI = "index\tprediction\n0\t1\n1\t0\n2\t1\n";
static const char *W_AX = "index\tprediction\n0\tcontradiction\n1\tcontradiction\n2\tentailment\n";

/* ---------------------------------------------------------------- tests */

static void test_table(void) {
  printf("targets and label mapping\n");
  /* the official format, written out independently of the code's table */
  static const struct {
    const char *name, *file, *task, *split;
    int rows;
    const char *l0, *l1, *l2;
  } want[11] = {
      {"cola", "CoLA.tsv", "cola", "test", 1063, "0", "1", NULL},
      {"sst2", "SST-2.tsv", "sst2", "test", 1821, "0", "1", NULL},
      {"mrpc", "MRPC.tsv", "mrpc", "test", 1725, "0", "1", NULL},
      {"stsb", "STS-B.tsv", "stsb", "test", 1379, NULL, NULL, NULL},
      {"mnli-m", "MNLI-m.tsv", "mnli", "test_matched", 9796, "entailment", "neutral", "contradiction"},
      {"mnli-mm", "MNLI-mm.tsv", "mnli", "test_mismatched", 9847, "entailment", "neutral", "contradiction"},
      {"qnli", "QNLI.tsv", "qnli", "test", 5463, "entailment", "not_entailment", NULL},
      {"qqp", "QQP.tsv", "qqp", "test", 390965, "0", "1", NULL},
      {"rte", "RTE.tsv", "rte", "test", 3000, "entailment", "not_entailment", NULL},
      {"wnli", "WNLI.tsv", "wnli", "test", 146, "0", "1", NULL},
      {"ax", "AX.tsv", "mnli", "ax", 1104, "entailment", "neutral", "contradiction"},
  };
  CHECK(pb_submit_target_at(11) == NULL && pb_submit_target_at(-1) == NULL, "11 targets");
  for (int i = 0; i < 11; i++) {
    const pb_submit_target *tg = pb_submit_target_at(i);
    CHECK(tg && !strcmp(tg->name, want[i].name) && !strcmp(tg->file, want[i].file) && !strcmp(tg->task, want[i].task) &&
              !strcmp(tg->split, want[i].split) && tg->official_rows == want[i].rows,
          "target %d is %s", i, want[i].file);
    const char *wl[3] = {want[i].l0, want[i].l1, want[i].l2};
    int nl = !wl[0] ? 0 : !wl[2] ? 2 : 3;
    CHECK(tg->n_labels == nl, "%s: %d labels", tg->file, nl);
    const pb_task *t = pb_task_find(tg->task);
    CHECK(t && pb_task_split(t, tg->split), "%s: task %s has split %s", tg->file, tg->task, tg->split);
    for (int k = 0; k < nl; k++) {
      CHECK(!strcmp(tg->labels[k], wl[k]), "%s label %d is '%s'", tg->file, k, wl[k]);
      /* the submission strings are the task's own label strings, class by class */
      CHECK(t && k < t->num_labels && !strcmp(t->labels[k], wl[k]), "%s: task label %d is '%s'", tg->file, k, wl[k]);
    }
    CHECK(pb_submit_target_find(tg->name) == tg && pb_submit_target_find(tg->file) == NULL, "find %s", tg->name);
  }
  /* WNLI's class order is the reverse of RTE's: RTE class 0 = entailment, WNLI "1" = entailment.
   * Both map to their own strings, never through each other's list. */
  const pb_submit_target *wnli = pb_submit_target_find("wnli"), *rte = pb_submit_target_find("rte");
  CHECK(!strcmp(rte->labels[0], "entailment") && !strcmp(wnli->labels[1], "1") && strstr(wnli->meaning, "1 = entailment"),
        "WNLI 1 = entailment, RTE class 0 = entailment");
  CHECK(pb_submit_target_find("SST-2") == pb_submit_target_find("sst2") && pb_submit_target_find("sst2"), "SST-2");
  CHECK(pb_submit_target_find("mnli") == pb_submit_target_find("MNLI-m"), "mnli = mnli-m");
  CHECK(pb_submit_target_find("mnli_mismatched") == pb_submit_target_find("mnli-mm") && pb_submit_target_find("mnlimm"),
        "mnli_mismatched = mnli-mm");
  CHECK(pb_submit_target_find("diagnostic") == pb_submit_target_find("AX"), "diagnostic = ax");
  CHECK(pb_submit_target_find("STS-B") == pb_submit_target_find("stsb"), "STS-B");
  CHECK(pb_submit_target_find("squad") == NULL && pb_submit_target_find("") == NULL && pb_submit_target_find(NULL) == NULL,
        "unknown names");
}

static void test_all_small(void) {
  printf("all 11 files from the small data folder (%s)\n", DATA);
  const char *p[11] = {wfile("p/cola.tsv", P_COLA),    wfile("p/sst2.tsv", P_SST2),   wfile("p/mrpc.tsv", P_MRPC),
                       wfile("p/stsb.tsv", P_STSB),    wfile("p/mnlim.tsv", P_MNLIM), wfile("p/mnlimm.tsv", P_MNLIMM),
                       wfile("p/qnli.tsv", P_QNLI),    wfile("p/qqp.tsv", P_QQP),     wfile("p/rte.tsv", P_RTE),
                       wfile("p/wnli.tsv", P_WNLI),    wfile("p/ax.tsv", P_AX)};
  const char *w[11] = {W_COLA, W_SST2, W_MRPC, W_STSB, W_MNLIM, W_MNLIMM, W_QNLI, W_QQP, W_RTE, W_WNLI, W_AX};
  char a[11][600], out[400];
  const char *names[11] = {"cola", "SST-2", "mrpc", "sts-b", "mnli-m", "mnli_mismatched", "qnli", "qqp", "RTE", "wnli", "ax"};
  for (int i = 0; i < 11; i++) snprintf(a[i], sizeof a[i], "%s=%s", names[i], p[i]);
  snprintf(out, sizeof out, "%s/sub", T);
  int rc = submit("--out", out, "--data-dir", DATA, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10],
                  "--require-all", NULL);
  printf("%s", g_out);
  CHECK(rc == 0, "exit %d: %s", rc, g_err);
  CHECK(g_err[0] == 0, "nothing on stderr: %s", g_err);
  for (int i = 0; i < 11; i++) expect_file(out, FILES[i], w[i]);
  CHECK(strstr(g_out, "wrote all 11 files"), "report says complete");
  CHECK(strstr(g_out, "2 predictions clipped"), "STS-B clipping reported");
  CHECK(strstr(g_out, "data/RTE/test.tsv") && strstr(g_out, "data/diagnostic/diagnostic.tsv"),
        "row counts from the data folder's test files");

  /* existing files: refused without --force (nothing touched), replaced with --force */
  char *before = NULL;
  char rp[600];
  snprintf(rp, sizeof rp, "%s/RTE.tsv", out);
  wfile("sub/RTE.tsv", "stale\n");
  rc = submit("--out", out, "--data-dir", DATA, a[8], a[9], NULL);
  expect_refusal("existing file without --force", rc, 1, NULL, 0, "RTE.tsv exists", "--force");
  before = rfile(rp);
  CHECK(before && !strcmp(before, "stale\n"), "existing RTE.tsv untouched");
  free(before);
  expect_file(out, "WNLI.tsv", W_WNLI);
  rc = submit("--out", out, "--data-dir", DATA, a[8], "--force", NULL);
  CHECK(rc == 0, "--force: exit %d %s", rc, g_err);
  expect_file(out, "RTE.tsv", W_RTE);
  CHECK(strstr(g_out, "wrote 1 of 11 files; missing: CoLA.tsv SST-2.tsv") && strstr(g_out, "needs all 11"),
        "partial report lists the missing files: %s", g_out);

  /* --require-all with only some: exit 1, nothing written */
  snprintf(out, sizeof out, "%s/sub_partial", T);
  rc = submit("--out", out, "--data-dir", DATA, "--require-all", a[8], a[9], NULL);
  expect_refusal("--require-all, 2 of 11", rc, 1, out, 0, "--require-all", "CoLA.tsv");
  CHECK(!strstr(g_err, "RTE.tsv"), "RTE.tsv not listed as missing");
}

/* one bad predictions file for target `name`: exit 1, one line with the file's name and `frag` */
static void bad(const char *what, const char *name, const char *text, const char *frag) {
  static int k = 0;
  char rel[64], arg[700], out[400];
  snprintf(rel, sizeof rel, "bad/%d.tsv", k);
  snprintf(out, sizeof out, "%s/sub_bad%d", T, k++);
  const char *p = wfile(rel, text);
  snprintf(arg, sizeof arg, "%s=%s", name, p);
  /* a good file beside it must not be written either */
  char good[700];
  if (strcmp(name, "cola") != 0) snprintf(good, sizeof good, "cola=%s/p/cola.tsv", T);
  else snprintf(good, sizeof good, "wnli=%s/p/wnli.tsv", T);
  int rc = submit("--out", out, "--data-dir", DATA, good, arg, NULL);
  expect_refusal(what, rc, 1, out, 0, rel, frag);
}

static void test_refusals(void) {
  printf("refusals\n");
  bad("RTE with the MNLI header", "rte", P_MNLIM, ":1: header");
  bad("RTE with WNLI's 0/1 header", "rte", P_WNLI, ":1: header");
  bad("WNLI with RTE's header", "wnli", P_RTE, ":1: header");
  bad("STS-B with a classification header", "stsb", P_COLA, ":1: header");
  bad("header with a BOM", "rte", "\xEF\xBB\xBF" HNLI "0\t\tentailment\t1\t0\n", "\\xEF");
  bad("WNLI predicting 'entailment'", "wnli",
      H01 "0\t\tentailment\t0\t1\n1\t\t0\t1\t0\n2\t\t1\t0\t1\n", "prediction 'entailment' is not one of the WNLI.tsv labels (0, 1)");
  bad("RTE predicting '1'", "rte", HNLI "0\t\t1\t0\t1\n1\t\t0\t1\t0\n2\t\t1\t0\t1\n3\t\t1\t0\t1\n",
      "prediction '1' is not one of the RTE.tsv labels (entailment, not_entailment)");
  bad("MNLI-m prediction not the arg-max", "mnli-m",
      HMNLI "0\t\tentailment\t0\t2\t1\n1\t\tneutral\t0\t2\t1\n2\t\tcontradiction\t0\t1\t2\n", ":2: prediction 'entailment' is not the arg-max");
  bad("WNLI prediction 1 with logit_0 larger", "wnli", H01 "0\t\t1\t0.5\t-0.5\n1\t\t0\t0.5\t-0.5\n2\t\t1\t0\t3\n",
      ":2: prediction '1' is not the arg-max");
  bad("missing index (0,1,2,5)", "rte",
      HNLI "0\t\tentailment\t1\t0\n1\t\tentailment\t1\t0\n2\t\tentailment\t1\t0\n5\t\tentailment\t1\t0\n",
      ":5: index 5 outside 0..3");
  bad("repeated index", "rte",
      HNLI "0\t\tentailment\t1\t0\n1\t\tentailment\t1\t0\n1\t\tentailment\t1\t0\n3\t\tentailment\t1\t0\n",
      ":4: index 1 repeated (first on line 3)");
  bad("negative index", "qqp", H01 "0\t\t0\t1\t0\n-1\t\t1\t0\t1\n2\t\t1\t0\t1\n", ":3: index '-1' is not");
  bad("index not a number", "qqp", H01 "0\t\t0\t1\t0\n1x\t\t1\t0\t1\n2\t\t1\t0\t1\n", ":3: index '1x' is not");
  bad("empty index", "qqp", H01 "0\t\t0\t1\t0\n\t\t1\t0\t1\n2\t\t1\t0\t1\n", ":3: index '' is not");
  bad("gold present (a dev split)", "rte",
      HNLI "0\tentailment\tentailment\t1\t0\n1\t\tentailment\t1\t0\n2\t\tentailment\t1\t0\n3\t\tentailment\t1\t0\n",
      ":2: gold is 'entailment'");
  bad("STS-B gold present", "stsb", HSTS "0\t\t1\n1\t\t2\n2\t3.8\t3\n3\t\t4\n", ":4: gold is '3.8'");
  bad("3 rows where the test file has 4", "rte",
      HNLI "0\t\tentailment\t1\t0\n1\t\tentailment\t1\t0\n2\t\tentailment\t1\t0\n",
      "3 prediction rows, but RTE.tsv has 4 test rows");
  bad("5 rows where the test file has 4", "rte",
      HNLI "0\t\tentailment\t1\t0\n1\t\tentailment\t1\t0\n2\t\tentailment\t1\t0\n3\t\tentailment\t1\t0\n4\t\tentailment\t1\t0\n",
      "data/RTE/test.tsv");
  bad("header only", "wnli", H01, "0 prediction rows");
  bad("empty file", "wnli", "", "empty file");
  bad("too few columns", "wnli", H01 "0\t\t1\t0.5\n1\t\t0\t1\t0\n2\t\t1\t0\t1\n", ":2: 4 columns, expected 5");
  bad("too many columns", "ax", HMNLI "0\t\tentailment\t2\t1\t0\t9\n", ":2: 7 columns, expected 6");
  bad("logit not a number", "cola", H01 "0\t\t1\tx\t2\n1\t\t0\t1\t0\n2\t\t1\t0\t1\n", ":2: logit_0 'x'");
  bad("logit nan", "cola", H01 "0\t\t1\tnan\t2\n1\t\t0\t1\t0\n2\t\t1\t0\t1\n", ":2: logit_0 'nan'");
  bad("STS-B prediction nan", "stsb", HSTS "0\t\t1\n1\t\tnan\n2\t\t3\n3\t\t4\n", ":3: prediction 'nan' is not a finite");
  bad("STS-B prediction empty", "stsb", HSTS "0\t\t1\n1\t\t\n2\t\t3\n3\t\t4\n", ":3: prediction '' is not a finite");
  bad("blank line inside", "wnli", H01 "0\t\t1\t0\t1\n\n1\t\t0\t1\t0\n2\t\t1\t0\t1\n", ":3: blank line");
  char missing[400];
  snprintf(missing, sizeof missing, "rte=%s/nope.tsv", T);
  char out[400];
  snprintf(out, sizeof out, "%s/sub_missing", T);
  int rc = submit("--out", out, "--data-dir", DATA, missing, NULL);
  expect_refusal("missing predictions file", rc, 1, out, 0, "nope.tsv", NULL);
  /* trailing blank lines and CRLF are accepted */
  const char *p = wfile("ok/wnli_crlf.tsv", "index\tgold\tprediction\tlogit_0\tlogit_1\r\n0\t\t1\t-0.5\t0.5\r\n"
                                            "1\t\t0\t0.5\t-0.5\r\n2\t\t1\t0\t3\r\n\n\n");
  char arg[600];
  snprintf(arg, sizeof arg, "wnli=%s", p);
  snprintf(out, sizeof out, "%s/sub_crlf", T);
  rc = submit("--out", out, "--data-dir", DATA, arg, NULL);
  CHECK(rc == 0, "CRLF + trailing blank lines accepted: %s", g_err);
  expect_file(out, "WNLI.tsv", W_WNLI);
}

static void test_usage(void) {
  printf("usage errors (exit 2)\n");
  char out[400], arg[600];
  snprintf(out, sizeof out, "%s/sub_usage", T);
  snprintf(arg, sizeof arg, "rte=%s/p/rte.tsv", T);
  int rc = submit(arg, NULL);
  expect_refusal("no --out", rc, 2, NULL, 0, "--out", NULL);
  rc = submit("--out", out, NULL);
  expect_refusal("no SOURCE", rc, 2, NULL, 0, "SOURCE", NULL);
  rc = submit("--out", out, "squad=x.tsv", NULL);
  expect_refusal("unknown task", rc, 2, out, 0, "unknown task 'squad'", "mnli-mm");
  rc = submit("--out", out, arg, arg, NULL);
  expect_refusal("task given twice", rc, 2, out, 0, "RTE.tsv given twice", NULL);
  rc = submit("--out", out, "--where", "method", arg, NULL);
  expect_refusal("--where without =", rc, 2, out, 0, "KEY=VALUE", NULL);
  rc = submit("--out", out, "--bogus", arg, NULL);
  expect_refusal("unknown option", rc, 2, out, 0, "--bogus", NULL);
  rc = submit("--out", out, "--data-dir", "/nonexistent/pb-glue", arg, NULL);
  expect_refusal("--data-dir missing", rc, 2, out, 0, "/nonexistent/pb-glue", NULL);
  char bare[600];
  snprintf(bare, sizeof bare, "%s/p/rte.tsv", T);
  rc = submit("--out", out, bare, NULL);
  expect_refusal("predictions file without TASK=", rc, 2, out, 0, "give it as TASK=", NULL);
  rc = submit("--help", NULL);
  CHECK(rc == 0 && strstr(g_out, "TASK=PREDICTIONS.tsv") && strstr(g_out, "1 = entailment"), "--help");
}

static void test_jsonl(void) {
  printf("results JSONL sources\n");
  /* paths relative to the JSONL's folder (T), as a run from another folder leaves them */
  char rec[4096];
  snprintf(rec, sizeof rec,
           "{\"task\":\"rte\",\"method\":\"lora\",\"method_desc\":\"r=8\",\"seed\":0,"
           "\"predictions\":{\"dev\":\"p/none.tsv\",\"test\":\"p/rte.tsv\"}}\n"
           "{\"task\":\"mnli\",\"method\":\"lora\",\"method_desc\":\"r=8\",\"seed\":0,"
           "\"predictions\":{\"dev_matched\":\"x\",\"test_matched\":\"p/mnlim.tsv\",\"test_mismatched\":\"%s/p/mnlimm.tsv\","
           "\"ax\":\"p/ax.tsv\"}}\n"
           "{\"task\":\"wnli\",\"method\":\"lora\",\"seed\":0}\n"
           "torn {\"task\n",
           T);
  const char *j1 = wfile("results.jsonl", rec);
  char out[400];
  snprintf(out, sizeof out, "%s/sub_jsonl", T);
  int rc = submit("--out", out, "--data-dir", DATA, j1, NULL);
  CHECK(rc == 0, "jsonl: exit %d %s", rc, g_err);
  CHECK(strstr(g_err, "1 lines that are not JSON records skipped") && n_lines(g_err) == 1, "torn line warned: %s", g_err);
  expect_file(out, "RTE.tsv", W_RTE);
  expect_file(out, "MNLI-m.tsv", W_MNLIM);
  expect_file(out, "MNLI-mm.tsv", W_MNLIMM);
  expect_file(out, "AX.tsv", W_AX);
  CHECK(n_files_in(out) == 4, "4 files from the records");

  /* two records offer RTE.tsv: refused (listing both), resolved by --where or TASK=FILE */
  snprintf(rec, sizeof rec,
           "{\"task\":\"rte\",\"method\":\"lora\",\"method_desc\":\"r=8\",\"seed\":0,\"predictions\":{\"test\":\"p/rte.tsv\"}}\n"
           "{\"task\":\"rte\",\"method\":\"adapter\",\"method_desc\":\"mode=houlsby\",\"seed\":1,"
           "\"predictions\":{\"test\":\"bad/0.tsv\"}}\n"
           "{\"task\":\"rte\",\"method\":\"lora\",\"method_desc\":\"r=8\",\"seed\":0,\"predictions\":{\"test\":\"p/rte.tsv\"}}\n"
           "{\"task\":\"wnli\",\"method\":\"adapter\",\"seed\":1,\"backbone\":{\"fingerprint\":\"abc\"},"
           "\"predictions\":{\"test\":\"p/wnli.tsv\"}}\n");
  const char *j2 = wfile("results2.jsonl", rec);
  snprintf(out, sizeof out, "%s/sub_jsonl2", T);
  rc = submit("--out", out, "--data-dir", DATA, j2, NULL);
  expect_refusal("two records offer RTE.tsv", rc, 2, out, 0, "2 records offer RTE.tsv", "rte=FILE");
  CHECK(strstr(g_err, "results2.jsonl:1") && strstr(g_err, "results2.jsonl:2") && strstr(g_err, "adapter"),
        "both records listed (the identical third is not another offer): %s", g_err);
  rc = submit("--out", out, "--data-dir", DATA, "--where", "method=lora", j2, NULL);
  CHECK(rc == 0, "--where method=lora: %s", g_err);
  expect_file(out, "RTE.tsv", W_RTE);
  CHECK(n_files_in(out) == 1, "--where dropped the adapter WNLI record");
  snprintf(out, sizeof out, "%s/sub_jsonl3", T);
  rc = submit("--out", out, "--data-dir", DATA, "--where", "seed=1", "--where", "backbone.fingerprint=abc", j2, NULL);
  CHECK(rc == 0 && n_files_in(out) == 1, "--where numbers and dotted keys: %s", g_err);
  expect_file(out, "WNLI.tsv", W_WNLI);
  snprintf(out, sizeof out, "%s/sub_jsonl4", T);
  char arg[600];
  snprintf(arg, sizeof arg, "rte=%s/p/rte.tsv", T);
  rc = submit("--out", out, "--data-dir", DATA, j2, arg, NULL);
  CHECK(rc == 0 && n_files_in(out) == 2, "TASK=FILE beats the records: %s", g_err);
  expect_file(out, "RTE.tsv", W_RTE);
  rc = submit("--out", out, "--data-dir", DATA, "--where", "method=full", j2, NULL);
  expect_refusal("no record matches", rc, 1, NULL, 0, "nothing to submit", NULL);
}

/* the real sizes: row counts from the shared GLUE test files, official sizes where absent */
static void test_real(void) {
  printf("complete submission at the real sizes (%s)\n", REAL);
  static const char *SH[11] = {H01, H01, H01, HSTS, HMNLI, HMNLI, HNLI, H01, HNLI, H01, HMNLI};
  char args[11][700];
  int total_rows = 0;
  for (int i = 0; i < 11; i++) {
    const pb_submit_target *tg = pb_submit_target_at(i);
    int rows = 0;
    char from[1100];
    CHECK_OK(pb_submit_expected_rows(tg, REAL, &rows, from, sizeof from));
    int present = strstr(from, REAL) != NULL;
    printf("  %-12s %6d rows (%s)\n", tg->file, rows, from);
    CHECK(rows == tg->official_rows, "%s: %d rows, official %d", tg->file, rows, tg->official_rows);
    int want_present = strcmp(tg->task, "mnli") != 0 && strcmp(tg->task, "qqp") != 0;
    if (!strcmp(tg->name, "ax")) want_present = 1;
    CHECK(present == want_present, "%s: counted from %s", tg->file, from);
    /* predictions: label r % n (arg-max logits), STS-B r % 7 - 0.5 (clips at both ends) */
    char rel[64];
    snprintf(rel, sizeof rel, "real/%s", tg->file);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", T, rel);
    mkdirs(path);
    FILE *f = fopen(path, "wb");
    fputs(SH[i], f);
    for (int r = rows - 1; r >= 0; r--) { /* reversed: the output must be sorted */
      if (tg->n_labels == 0) {
        fprintf(f, "%d\t\t%.9g\n", r, (r % 7) - 0.5);
      } else {
        int k = r % tg->n_labels;
        fprintf(f, "%d\t\t%s", r, tg->labels[k]);
        for (int j = 0; j < tg->n_labels; j++) fprintf(f, "\t%.9g", j == k ? 1.25 : -0.5);
        fprintf(f, "\n");
      }
    }
    fclose(f);
    snprintf(args[i], sizeof args[i], "%s=%s", tg->name, path);
    total_rows += rows;
  }
  char out[400];
  snprintf(out, sizeof out, "%s/sub_real", T);
  int rc = submit("--out", out, "--data-dir", REAL, "--require-all", args[0], args[1], args[2], args[3], args[4], args[5],
                  args[6], args[7], args[8], args[9], args[10], NULL);
  printf("%s", g_out);
  CHECK(rc == 0, "real: exit %d %s", rc, g_err);
  for (int i = 0; i < 11; i++) {
    const pb_submit_target *tg = pb_submit_target_at(i);
    char p[600];
    snprintf(p, sizeof p, "%s/%s", out, tg->file);
    char *got = rfile(p);
    CHECK(got != NULL, "%s written", p);
    if (!got) continue;
    /* rebuild the expected bytes */
    size_t cap = (size_t)tg->official_rows * 24 + 64, n = 0;
    char *w = malloc(cap);
    n += (size_t)snprintf(w + n, cap - n, "index\tprediction\n");
    for (int r = 0; r < tg->official_rows; r++) {
      if (tg->n_labels == 0) {
        static const char *sts[7] = {"0.000", "0.500", "1.500", "2.500", "3.500", "4.500", "5.000"}; /* clipped */
        n += (size_t)snprintf(w + n, cap - n, "%d\t%s\n", r, sts[r % 7]);
      } else {
        n += (size_t)snprintf(w + n, cap - n, "%d\t%s\n", r, tg->labels[r % tg->n_labels]);
      }
    }
    CHECK(strcmp(got, w) == 0, "%s: bytes differ from the expected %zu bytes", tg->file, n);
    CHECK(n_lines(got) == tg->official_rows + 1, "%s: %d lines", tg->file, n_lines(got));
    free(w);
    free(got);
  }
  /* the two label lists whose direction matters, spelled out */
  char p[600];
  snprintf(p, sizeof p, "%s/WNLI.tsv", out);
  char *g = rfile(p);
  const char *wn = "index\tprediction\n0\t0\n1\t1\n2\t0\n";
  CHECK(g && !strncmp(g, wn, strlen(wn)), "WNLI rows 0/1/0");
  free(g);
  snprintf(p, sizeof p, "%s/QNLI.tsv", out);
  g = rfile(p);
  const char *qn = "index\tprediction\n0\tentailment\n1\tnot_entailment\n";
  CHECK(g && !strncmp(g, qn, strlen(qn)), "QNLI strings");
  free(g);
  CHECK(strstr(g_out, "wrote all 11 files"), "complete");
  printf("  %d rows in all\n", total_rows);

  /* the data folder by default: ../shared/data/glue from the repo root; $PEFTBENCH_DATA wins */
  snprintf(out, sizeof out, "%s/sub_default", T);
  rc = submit("--out", out, args[9], NULL);
  CHECK(rc == 0 && strstr(g_out, "shared/data/glue/WNLI/test.tsv"), "default data folder: %s%s", g_out, g_err);
  setenv("PEFTBENCH_DATA", DATA, 1);
  snprintf(out, sizeof out, "%s/sub_env", T);
  rc = submit("--out", out, args[9], NULL);
  expect_refusal("146 rows, $PEFTBENCH_DATA's WNLI has 3", rc, 1, out, 0, "146 prediction rows, but WNLI.tsv has 3",
                 "data/WNLI/test.tsv");
  unsetenv("PEFTBENCH_DATA");
}

int main(void) {
  snprintf(T, sizeof T, "/tmp/pb_test_submit_XXXXXX");
  if (!mkdtemp(T)) {
    printf("FAIL mkdtemp\n");
    return 1;
  }
  snprintf(DATA, sizeof DATA, "%s/data", T);
  unsetenv("PEFTBENCH_DATA");
  write_data();
  test_table();
  test_all_small();
  test_refusals();
  test_usage();
  test_jsonl();
  test_real();
  if (!failures) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", T);
    if (system(cmd) != 0) printf("  (could not remove %s)\n", T);
  } else {
    printf("  files kept in %s\n", T);
  }
  if (failures) printf("test_submit: %d of %d checks FAILED\n", failures, checks);
  else printf("test_submit: all %d checks passed\n", checks);
  return failures ? 1 : 0;
}
