/* GLUE registry and loaders: the real files in ../shared/data/glue, small files written in
 * the official layouts for the tasks missing there (MNLI, QQP, QNLI train), malformed files,
 * and data-dir resolution. Run from the repo root. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/status.h"
#include "harness/glue.h"
#include "tests/check.h"


static const char *REAL = "../shared/data/glue";
static char g_tmp[256];
static char g_made[64][512]; /* files and folders created, removed at the end */
static int g_nmade = 0;

static void remember(const char *p) {
  if (g_nmade < 64) snprintf(g_made[g_nmade++], sizeof g_made[0], "%s", p);
}

/* Writes g_tmp/folder/file with the given bytes (len bytes, may hold NULs/invalid UTF-8). */
static void write_bytes(const char *folder, const char *file, const char *data, size_t len) {
  char d[512], p[600];
  snprintf(d, sizeof d, "%s/%s", g_tmp, folder);
  if (mkdir(d, 0755) == 0) remember(d);
  snprintf(p, sizeof p, "%s/%s", d, file);
  FILE *f = fopen(p, "wb");
  if (!f) {
    printf("FAIL cannot write %s\n", p);
    failures++;
    return;
  }
  fwrite(data, 1, len, f);
  fclose(f);
  remember(p);
}
static void write_text(const char *folder, const char *file, const char *text) {
  write_bytes(folder, file, text, strlen(text));
}

/* Expects an error whose message names `file` and contains `where` (e.g. ":3:"). */
static void expect_error(const char *task, const char *folder, const char *split, int flags,
                         const char *file, const char *where, const char *what) {
  pb_dataset ds;
  int rc = pb_glue_load_ex(pb_task_find(task), g_tmp, split, flags, &ds);
  const char *msg = pb_last_error();
  printf("  %-28s -> %s\n", what, rc ? msg : "(loaded!)");
  CHECK(rc < 0, "%s: expected an error", what);
  CHECK(strstr(msg, file) != NULL, "%s: message lacks file name %s: %s", what, file, msg);
  CHECK(strstr(msg, where) != NULL, "%s: message lacks '%s': %s", what, where, msg);
  CHECK(ds.n == 0 && ds.ex == NULL, "%s: dataset not empty after error", what);
  pb_dataset_free(&ds);
  (void)folder;
}

static void test_registry(void) {
  printf("registry\n");
  CHECK(pb_task_count() == 9, "9 tasks, got %d", pb_task_count());
  const char *order[9] = {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"};
  for (int i = 0; i < 9; i++) {
    const pb_task *t = pb_task_at(i);
    CHECK(t && strcmp(t->name, order[i]) == 0, "task %d is %s", i, order[i]);
    CHECK(pb_task_split(t, "train") && pb_task_split(t, "dev") && pb_task_split(t, "test"),
          "%s has train/dev/test", order[i]);
    CHECK(t->n_eval >= 1 && pb_task_split(t, t->eval_splits[0]), "%s eval split", order[i]);
  }
  CHECK(pb_task_at(9) == NULL && pb_task_at(-1) == NULL, "pb_task_at out of range");
  CHECK(pb_task_find("SST-2") == pb_task_find("sst2") && pb_task_find("sst2"), "SST-2 alias");
  CHECK(pb_task_find("STS-B") && pb_task_find("STS-B")->is_regression, "STS-B is regression");
  CHECK(pb_task_find("stsb")->num_labels == 1, "STS-B num_labels 1");
  CHECK(pb_task_find("CoLA") && pb_task_find("MNLI") && pb_task_find("mnli")->num_labels == 3,
        "CoLA/MNLI lookups");
  CHECK(pb_task_find("squad") == NULL && pb_task_find(NULL) == NULL, "unknown task -> NULL");
  const pb_task *mnli = pb_task_find("mnli");
  CHECK(mnli->n_eval == 2 && strcmp(mnli->eval_splits[1], "dev_mismatched") == 0, "MNLI m/mm");
  CHECK(pb_task_split(mnli, "dev") == pb_task_split(mnli, "dev_matched"), "MNLI dev alias");
  CHECK(strcmp(pb_task_split(mnli, "dev_mismatched")->file, "dev_mismatched.tsv") == 0,
        "MNLI mismatched file name");
  CHECK(pb_task_split(pb_task_find("rte"), "dev_mismatched") == NULL, "RTE has no mismatched");
  /* AX, the diagnostic set, is a split of MNLI (evaluated with the MNLI model), unlabelled */
  const pb_split_layout *ax = pb_task_split(mnli, "ax");
  CHECK(ax && strcmp(ax->split, "ax") == 0 && strcmp(ax->file, "../diagnostic/diagnostic.tsv") == 0 &&
            ax->col_label == PB_COL_NONE && ax->ncols == 3 && ax->col_a == 1 && ax->col_b == 2,
        "MNLI split ax = ../diagnostic/diagnostic.tsv, 3 columns, unlabelled");
  CHECK(mnli->n_splits == 6 && mnli->n_splits <= PB_GLUE_MAX_SPLITS, "MNLI has 6 splits (%d)", mnli->n_splits);
  CHECK(pb_task_split(pb_task_find("rte"), "ax") == NULL, "only MNLI has ax");
  CHECK(strcmp(mnli->labels[0], "entailment") == 0 && strcmp(mnli->labels[2], "contradiction") == 0,
        "MNLI label order entailment/neutral/contradiction");
  CHECK(pb_task_find("cola")->metrics[0] == PB_METRIC_MCC, "CoLA main metric MCC");
  CHECK(pb_task_find("qqp")->metrics[0] == PB_METRIC_F1 && pb_task_find("qqp")->n_metrics == 2,
        "QQP F1 + acc");
  char names[256];
  pb_task_names(names, sizeof names);
  printf("  tasks: %s\n", names);
  CHECK(strcmp(names, "cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli") == 0, "names");
  char small[8];
  pb_task_names(small, sizeof small);
  CHECK(strlen(small) == 7, "pb_task_names truncates safely");
}

static int load_count(const char *task, const char *split, int flags, int want) {
  pb_dataset ds;
  int rc = pb_glue_load_ex(pb_task_find(task), REAL, split, flags, &ds);
  int n = ds.n;
  printf("  %-5s %-6s %6d rows %s\n", task, split, n, rc ? pb_last_error() : "");
  CHECK(rc == PB_OK, "%s %s: %s", task, split, pb_last_error());
  CHECK(n == want, "%s %s: %d rows, want %d", task, split, n, want);
  pb_dataset_free(&ds);
  return rc;
}

static void test_real(void) {
  printf("real GLUE files in %s\n", REAL);
  struct {
    const char *task, *split;
    int n;
  } c[] = {{"cola", "train", 8551}, {"cola", "dev", 1043}, {"cola", "test", 1063},
           {"sst2", "train", 67349}, {"sst2", "dev", 872},  {"sst2", "test", 1821},
           {"mrpc", "train", 3668}, {"mrpc", "dev", 408},   {"mrpc", "test", 1725},
           {"stsb", "train", 5749}, {"stsb", "dev", 1500},  {"stsb", "test", 1379},
           {"qnli", "dev", 5463},   {"qnli", "test", 5463}, {"rte", "train", 2490},
           {"rte", "dev", 277},     {"rte", "test", 3000},  {"wnli", "train", 635},
           {"wnli", "dev", 71},     {"wnli", "test", 146}};
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    int labelled = strcmp(c[i].split, "test") != 0;
    load_count(c[i].task, c[i].split, labelled ? PB_GLUE_LABELS : 0, c[i].n);
  }

  pb_dataset ds;
  /* CoLA train: gj04 \t 1 \t \t Our friends won't buy this analysis, ... */
  CHECK(pb_glue_load(pb_task_find("cola"), REAL, "train", 1, &ds) == PB_OK, "cola train");
  CHECK(ds.n > 0 && strcmp(ds.ex[0].a, "Our friends won't buy this analysis, let alone the next one we propose.") == 0,
        "cola first sentence: '%s'", ds.n ? ds.ex[0].a : "");
  CHECK(ds.n > 0 && ds.ex[0].b == NULL && ds.ex[0].label == 1 && ds.ex[0].line == 1,
        "cola first: single sentence, label 1, line 1");
  pb_dataset_free(&ds);
  /* CoLA dev has no final newline: last row still there */
  CHECK(pb_glue_load(pb_task_find("cola"), REAL, "dev", 1, &ds) == PB_OK, "cola dev");
  CHECK(ds.n == 1043 && ds.ex[1042].line == 1043 && ds.ex[1042].a[strlen(ds.ex[1042].a) - 1] == '.',
        "cola dev last row (no final newline)");
  pb_dataset_free(&ds);
  /* SST-2 train: "hide new secretions from the parental units \t0" (trailing space kept) */
  CHECK(pb_glue_load(pb_task_find("sst2"), REAL, "train", 1, &ds) == PB_OK, "sst2 train");
  CHECK(ds.n > 0 && strcmp(ds.ex[0].a, "hide new secretions from the parental units ") == 0 &&
            ds.ex[0].label == 0 && ds.ex[0].line == 2,
        "sst2 first example");
  pb_dataset_free(&ds);
  /* MRPC train (BOM header): 1 \t 702876 \t 702977 \t Amrozi accused ... \t Referring to ... */
  CHECK(pb_glue_load(pb_task_find("mrpc"), REAL, "train", 1, &ds) == PB_OK, "mrpc train: %s",
        pb_last_error());
  CHECK(ds.n > 0 && strncmp(ds.ex[0].a, "Amrozi accused his brother, whom he called \"the witness\"", 56) == 0 &&
            strncmp(ds.ex[0].b, "Referring to him as only \"the witness\"", 38) == 0 && ds.ex[0].label == 1 &&
            ds.ex[1].label == 0,
        "mrpc first example");
  pb_dataset_free(&ds);
  /* STS-B train: ... A plane is taking off. \t An air plane is taking off. \t 5.000 */
  CHECK(pb_glue_load(pb_task_find("stsb"), REAL, "train", 1, &ds) == PB_OK, "stsb train");
  CHECK(ds.n > 1 && strcmp(ds.ex[0].a, "A plane is taking off.") == 0 &&
            strcmp(ds.ex[0].b, "An air plane is taking off.") == 0 && ds.ex[0].target == 5.0f &&
            fabsf(ds.ex[1].target - 3.8f) < 1e-6f && ds.ex[0].label == -1,
        "stsb first examples (5.000, 3.800)");
  pb_dataset_free(&ds);
  /* RTE train: the row with index 2164 (line 2166) starts with an unmatched quote */
  CHECK(pb_glue_load(pb_task_find("rte"), REAL, "train", 1, &ds) == PB_OK, "rte train: %s",
        pb_last_error());
  CHECK(ds.n == 2490 && ds.ex[2164].line == 2166 &&
            strncmp(ds.ex[2164].a, "\"That film wasn't too successful", 32) == 0 &&
            strcmp(ds.ex[2164].b, "The film \"WarGames\" was shot in 1983.") == 0 &&
            ds.ex[2164].label == 1,
        "rte train row 2164 with the unmatched quote: '%.40s'", ds.n > 2164 ? ds.ex[2164].a : "");
  CHECK(ds.ex[0].label == 1 && ds.ex[1].label == 0, "rte labels: not_entailment=1, entailment=0");

  /* subsample: deterministic, file order, a true subset */
  pb_dataset d2;
  CHECK(pb_glue_load(pb_task_find("rte"), REAL, "train", 1, &d2) == PB_OK, "rte train again");
  CHECK(pb_dataset_subsample(&ds, 100, 42) == PB_OK && pb_dataset_subsample(&d2, 100, 42) == PB_OK,
        "subsample");
  int same = ds.n == 100 && d2.n == 100, ordered = 1;
  for (int i = 0; same && i < 100; i++) same = ds.ex[i].line == d2.ex[i].line && strcmp(ds.ex[i].a, d2.ex[i].a) == 0;
  for (int i = 1; i < ds.n; i++) ordered &= ds.ex[i].line > ds.ex[i - 1].line;
  CHECK(same, "same seed -> same subset");
  CHECK(ordered, "subset in file order");
  pb_dataset_free(&d2);
  CHECK(pb_glue_load(pb_task_find("rte"), REAL, "train", 1, &d2) == PB_OK, "rte train again");
  pb_dataset_subsample(&d2, 100, 43);
  int diff = 0;
  for (int i = 0; i < 100; i++) diff += ds.ex[i].line != d2.ex[i].line;
  CHECK(diff > 0, "different seed -> different subset");
  CHECK(pb_dataset_subsample(&d2, 1000, 1) == PB_OK && d2.n == 100, "n >= size: unchanged");
  pb_dataset_free(&d2);
  pb_dataset_free(&ds);

  /* QNLI dev labels */
  CHECK(pb_glue_load(pb_task_find("qnli"), REAL, "dev", 1, &ds) == PB_OK, "qnli dev");
  CHECK(ds.n > 1 && ds.ex[0].label == 0 && ds.ex[1].label == 1 &&
            strcmp(ds.ex[0].a, "What came into force after the new constitution was herald?") == 0,
        "qnli dev first examples");
  pb_dataset_free(&ds);

  /* test splits have no labels: with_labels = 1 is an error, 0 loads */
  CHECK(pb_glue_load(pb_task_find("sst2"), REAL, "test", 1, &ds) < 0, "sst2 test with labels");
  printf("  sst2 test with labels -> %s\n", pb_last_error());
  CHECK(pb_glue_load(pb_task_find("sst2"), REAL, "test", 0, &ds) == PB_OK && !ds.has_labels &&
            ds.ex[0].label == -1 && strcmp(ds.ex[0].a, "uneasy mishmash of styles and genres .") == 0,
        "sst2 test text only");
  pb_dataset_free(&ds);

  /* AX (diagnostic/diagnostic.tsv beside the task folders): 1,104 rows, no final newline */
  CHECK(pb_glue_load(pb_task_find("mnli"), REAL, "ax", 0, &ds) == PB_OK, "mnli ax: %s", pb_last_error());
  printf("  mnli  ax     %6d rows (%s)\n", ds.n, ds.path);
  CHECK(ds.n == 1104 && !ds.has_labels && strstr(ds.path, "diagnostic/diagnostic.tsv"), "ax: 1104 rows, got %d",
        ds.n);
  CHECK(ds.n == 1104 && strcmp(ds.ex[0].a, "The cat sat on the mat.") == 0 &&
            strcmp(ds.ex[0].b, "The cat did not sit on the mat.") == 0 && ds.ex[0].label == -1 &&
            ds.ex[0].line == 2 && ds.ex[1103].line == 1105,
        "ax first row / last row line");
  pb_dataset_free(&ds);
  CHECK(pb_glue_load(pb_task_find("mnli"), REAL, "ax", 1, &ds) == PB_ERR_ARG, "ax has no labels");

  /* missing tasks here: clear message naming task, split and where it looked */
  int rc = pb_glue_load(pb_task_find("mnli"), REAL, "dev_mismatched", 1, &ds);
  printf("  mnli dev_mismatched -> %s\n", pb_last_error());
  CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "dev_mismatched.tsv") &&
            strstr(pb_last_error(), "MNLI") && strstr(pb_last_error(), "mnli"),
        "missing MNLI file message");
  rc = pb_glue_load(pb_task_find("qqp"), REAL, "train", 1, &ds);
  printf("  qqp train -> %s\n", pb_last_error());
  CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "QQP/train.tsv"), "missing QQP folder");
  rc = pb_glue_load(pb_task_find("qnli"), REAL, "train", 1, &ds);
  CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "train.tsv"), "missing QNLI train");
  rc = pb_glue_load(pb_task_find("rte"), REAL, "validation", 1, &ds);
  printf("  rte validation -> %s\n", pb_last_error());
  CHECK(rc == PB_ERR_ARG && strstr(pb_last_error(), "validation"), "unknown split");
}

static const char MNLI_TRAIN_HDR[] =
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n";
static const char MNLI_DEV_HDR[] =
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\t"
    "label5\tgold_label\n";

static void test_written(void) {
  printf("small files in the official layouts (%s)\n", g_tmp);
  char buf[4096];
  /* MNLI: folder spelled "mnli" (case-insensitive lookup); CRLF line endings in train */
  snprintf(buf, sizeof buf,
           "%s"
           "0\t31193\t31193n\tgovernment\t( ( Conceptually ...\t( ( Product ...\t(ROOT ...)\t(ROOT ...)\t"
           "Conceptually cream skimming has two basic dimensions - product and geography.\t"
           "Product and geography are what make cream skimming work. \tneutral\tneutral\r\n"
           "1\t101457\t101457e\ttelephone\tx\ty\tx\ty\tyou know during the season\t"
           "You lose the things to the following level\tentailment\tentailment\r\n"
           "2\t134793\t134793e\tfiction\tx\ty\tx\ty\tOne of our number will carry out your instructions.\t"
           "A member of my team will execute your orders with immense precision.\tcontradiction\tcontradiction\r\n",
           MNLI_TRAIN_HDR);
  write_text("mnli", "train.tsv", buf);
  snprintf(buf, sizeof buf,
           "%s"
           "0\t63735\t63735n\tslate\tx\ty\tx\ty\tThe new rights are nice enough\tEveryone really likes "
           "the newest benefits \tneutral\tneutral\tentailment\tneutral\tneutral\tneutral\n"
           "1\t91383\t91383c\tgovernment\tx\ty\tx\ty\tThis site includes a list of all award winners.\t"
           "The Government Executive articles housed on the website are not able to be searched .\t"
           "contradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction",
           MNLI_DEV_HDR);
  write_text("mnli", "dev_matched.tsv", buf); /* no final newline */
  snprintf(buf, sizeof buf,
           "%s"
           "0\t75290\t75290c\tletters\tx\ty\tx\ty\tYour contribution helped make it possible for us.\t"
           "Your contributions were of no help.\tcontradiction\tcontradiction\tcontradiction\t"
           "contradiction\tcontradiction\tcontradiction\n\n\n",
           MNLI_DEV_HDR);
  write_text("mnli", "dev_mismatched.tsv", buf); /* blank trailing lines */

  const pb_task *mnli = pb_task_find("mnli");
  pb_dataset ds;
  int rc = pb_glue_load(mnli, g_tmp, "train", 1, &ds);
  CHECK(rc == PB_OK, "mnli train: %s", pb_last_error());
  CHECK(ds.n == 3 && ds.ex[0].label == 1 && ds.ex[1].label == 0 && ds.ex[2].label == 2,
        "mnli train labels neutral/entailment/contradiction -> 1/0/2");
  CHECK(ds.n == 3 && strcmp(ds.ex[0].a, "Conceptually cream skimming has two basic dimensions - product and geography.") == 0 &&
            strcmp(ds.ex[0].b, "Product and geography are what make cream skimming work. ") == 0,
        "mnli sentence1/sentence2 columns 8/9");
  CHECK(ds.n == 3 && strcmp(ds.ex[2].b, "A member of my team will execute your orders with immense precision.") == 0,
        "mnli CRLF stripped");
  pb_dataset_free(&ds);
  rc = pb_glue_load(mnli, g_tmp, "dev_matched", 1, &ds);
  CHECK(rc == PB_OK && ds.n == 2 && ds.ex[0].label == 1 && ds.ex[1].label == 2,
        "mnli dev_matched (gold_label = last of 16 columns): %s", pb_last_error());
  pb_dataset_free(&ds);
  rc = pb_glue_load(mnli, g_tmp, "dev", 1, &ds);
  CHECK(rc == PB_OK && ds.n == 2, "mnli dev = dev_matched");
  pb_dataset_free(&ds);
  rc = pb_glue_load(mnli, g_tmp, "dev_mismatched", 1, &ds);
  CHECK(rc == PB_OK && ds.n == 1 && ds.ex[0].label == 2 &&
            strcmp(ds.ex[0].b, "Your contributions were of no help.") == 0,
        "mnli dev_mismatched with blank trailing lines: %s", pb_last_error());
  pb_dataset_free(&ds);

  /* AX here: missing first (one line naming the file), then folder and file found
   * case-insensitively beside the task folders */
  rc = pb_glue_load(mnli, g_tmp, "ax", 0, &ds);
  printf("  mnli ax missing -> %s\n", pb_last_error());
  CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "diagnostic/diagnostic.tsv") &&
            strstr(pb_last_error(), "mnli ax"),
        "missing ax message: %s", pb_last_error());
  write_text("Diagnostic", "DIAGNOSTIC.tsv",
             "index\tsentence1\tsentence2\n0\tThe cat sat on the mat.\tThe cat did not sit on the mat.\n"
             "1\tThe cat did not sit on the mat.\tThe cat sat on the mat.");
  rc = pb_glue_load(mnli, g_tmp, "ax", 0, &ds);
  CHECK(rc == PB_OK && ds.n == 2 && strcmp(ds.ex[1].b, "The cat sat on the mat.") == 0 && ds.ex[1].label == -1,
        "mnli ax from Diagnostic/DIAGNOSTIC.tsv: %s", pb_last_error());
  pb_dataset_free(&ds);

  /* QQP: id qid1 qid2 question1 question2 is_duplicate */
  write_text("QQP", "train.tsv",
             "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
             "133273\t213221\t213222\tHow is the life of a math student? Could you describe your own experiences?\t"
             "Which level of prepration is enough for the exam jlpt5?\t0\n"
             "402555\t536040\t536041\tHow do I control my horny emotions?\tHow do you control your horniness?\t1\n"
             "360472\t364011\t490273\tWhat causes stool color to change to yellow?\t\"What can cause stool to come out as little balls?\t0\n");
  const pb_task *qqp = pb_task_find("qqp");
  rc = pb_glue_load(qqp, g_tmp, "train", 1, &ds);
  CHECK(rc == PB_OK && ds.n == 3 && ds.ex[0].label == 0 && ds.ex[1].label == 1 &&
            strcmp(ds.ex[1].a, "How do I control my horny emotions?") == 0 &&
            ds.ex[2].b[0] == '"',
        "qqp train: %s", pb_last_error());
  pb_dataset_free(&ds);
  /* QQP dev with a malformed (truncated) row: error by default, skipped on request */
  write_text("QQP", "dev.tsv",
             "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
             "1\t3\t4\tWhy?\tWhy not?\t0\n"
             "2\t5\t6\tHow can I\n"
             "3\t7\t8\tWho?\tWhom?\t1\n");
  expect_error("qqp", "QQP", "dev", PB_GLUE_LABELS, "QQP/dev.tsv", ":3:", "qqp truncated row");
  rc = pb_glue_load_ex(qqp, g_tmp, "dev", PB_GLUE_LABELS | PB_GLUE_SKIP_MALFORMED, &ds);
  CHECK(rc == PB_OK && ds.n == 2 && ds.n_skipped == 1 && ds.ex[1].line == 4,
        "qqp dev skip malformed: %s", pb_last_error());
  pb_dataset_free(&ds);

  /* QNLI train: index question sentence label */
  write_text("QNLI", "train.tsv",
             "index\tquestion\tsentence\tlabel\n"
             "0\tWhen did the third Digimon series begin?\tUnlike the two seasons before it and most of the seasons that followed, Digimon Tamers takes a darker and more realistic approach to its story featuring Digimon who do not reincarnate after their deaths and more complex character development in the original Japanese.\tnot_entailment\n"
             "1\tWhich missile batteries often have individual launchers several kilometres from one another?\tWhen MANPADS is operated by specialists, batteries may have several dozen teams deploying separately in small sections; self-propelled air defence guns may deploy in pairs.\tnot_entailment\n"
             "2\tWhat two things does Popper argue Tarski's theory involves in an evaluation of truth?\tHe bases this interpretation on the fact that examples such as the one described above refer to two things: assertions and the facts to which they refer.\tentailment\n");
  rc = pb_glue_load(pb_task_find("qnli"), g_tmp, "train", 1, &ds);
  CHECK(rc == PB_OK && ds.n == 3 && ds.ex[0].label == 1 && ds.ex[2].label == 0 &&
            strcmp(ds.ex[0].a, "When did the third Digimon series begin?") == 0,
        "qnli train: %s", pb_last_error());
  pb_dataset_free(&ds);

  /* data dir resolution on this temporary folder (task folders found case-insensitively) */
  char out[1024];
  const char *none[1] = {"/nonexistent/pb/glue"};
  CHECK(pb_glue_data_dir_from(g_tmp, "/nonexistent/env", none, 1, out, sizeof out) == PB_OK &&
            strcmp(out, g_tmp) == 0,
        "explicit dir wins over env");
  CHECK(pb_glue_data_dir_from(NULL, g_tmp, none, 1, out, sizeof out) == PB_OK &&
            strcmp(out, g_tmp) == 0,
        "env dir used without --data-dir");
  CHECK(pb_glue_data_dir_from("", "", (const char *const[]){"/nonexistent/pb/glue", g_tmp}, 2, out,
                              sizeof out) == PB_OK &&
            strcmp(out, g_tmp) == 0,
        "first existing fallback");
  rc = pb_glue_data_dir_from(NULL, NULL, none, 1, out, sizeof out);
  printf("  nothing found -> %s\n", pb_last_error());
  CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "/nonexistent/pb/glue") &&
            strstr(pb_last_error(), "SST-2/train.tsv") && strstr(pb_last_error(), "--data-dir") &&
            strstr(pb_last_error(), "PEFTBENCH_DATA"),
        "missing data message says where to put GLUE");
  rc = pb_glue_data_dir_from("/nonexistent/cli", NULL, none, 1, out, sizeof out);
  printf("  bad --data-dir -> %.80s...\n", pb_last_error());
  CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "/nonexistent/cli"), "bad --data-dir");
  rc = pb_glue_data_dir_from(NULL, "/nonexistent/env", none, 1, out, sizeof out);
  CHECK(rc == PB_ERR_NOTFOUND && strstr(pb_last_error(), "PEFTBENCH_DATA=/nonexistent/env"),
        "bad $PEFTBENCH_DATA");
  /* DATA/glue: a folder holding glue/ resolves to it */
  char parent[512];
  snprintf(parent, sizeof parent, "%s", "../shared/data");
  rc = pb_glue_data_dir_from(parent, NULL, none, 0, out, sizeof out);
  CHECK(rc == PB_OK && strcmp(out, "../shared/data/glue") == 0, "DATA -> DATA/glue (%s)", out);
  /* the real function: env var, then defaults */
  setenv("PEFTBENCH_DATA", g_tmp, 1);
  CHECK(pb_glue_data_dir(NULL, out, sizeof out) == PB_OK && strcmp(out, g_tmp) == 0,
        "pb_glue_data_dir reads $PEFTBENCH_DATA");
  CHECK(pb_glue_data_dir(REAL, out, sizeof out) == PB_OK && strcmp(out, REAL) == 0,
        "pb_glue_data_dir: --data-dir beats env");
  unsetenv("PEFTBENCH_DATA");
  CHECK(pb_glue_data_dir(NULL, out, sizeof out) == PB_OK && strcmp(out, "../shared/data/glue") == 0,
        "pb_glue_data_dir default ../shared/data/glue from the repo root (%s)", out);
  /* from another working directory, the source-checkout fallback finds the data */
  char cwd[1024];
  if (getcwd(cwd, sizeof cwd) && chdir("/") == 0) {
    rc = pb_glue_data_dir(NULL, out, sizeof out);
    printf("  from / -> %s\n", rc ? pb_last_error() : out);
    CHECK(rc == PB_OK && strstr(out, "/../shared/data/glue"), "PB_SOURCE_DIR fallback");
    CHECK(chdir(cwd) == 0, "chdir back");
  }
}

static void test_malformed(void) {
  printf("malformed files -> one-line errors with file and line\n");
  write_text("RTE", "train.tsv",
             "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly two\tnot_entailment\n");
  expect_error("rte", "RTE", "train", 1, "RTE/train.tsv", ":3:", "too few columns");
  write_text("RTE", "dev.tsv",
             "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tc\td\tneutral\n");
  expect_error("rte", "RTE", "dev", 1, "RTE/dev.tsv", ":3:", "label not in set");
  write_text("WNLI", "train.tsv", "index\tsentence\tsentence2\tlabel\n0\ta\tb\t1\n");
  expect_error("wnli", "WNLI", "train", 1, "WNLI/train.tsv", ":1:", "wrong header name");
  write_text("WNLI", "dev.tsv", "index\tsentence1\tsentence2\n0\ta\tb\n");
  expect_error("wnli", "WNLI", "dev", 1, "WNLI/dev.tsv", ":1:", "header too few columns");
  write_text("SST-2", "train.tsv", "");
  expect_error("sst2", "SST-2", "train", 1, "SST-2/train.tsv", ":1:", "empty file");
  write_text("SST-2", "dev.tsv", "sentence\tlabel\n\n\n");
  expect_error("sst2", "SST-2", "dev", 1, "SST-2/dev.tsv", ":1:", "header only");
  write_text("SST-2", "test.tsv", "index\tsentence\n0\tfine\n\n1\tafter blank\n");
  expect_error("sst2", "SST-2", "test", 0, "SST-2/test.tsv", ":3:", "blank line inside");
  static const char bad_utf8[] = "gj04\t1\t\tok sentence\ngj04\t0\t*\tbad \xC3\x28 byte\n";
  write_bytes("CoLA", "train.tsv", bad_utf8, sizeof bad_utf8 - 1);
  expect_error("cola", "CoLA", "train", 1, "CoLA/train.tsv", ":2:", "invalid UTF-8");
  static const char nul[] = "gj04\t1\t\tok\ngj04\t1\t\tNUL\0inside\n";
  write_bytes("CoLA", "dev.tsv", nul, sizeof nul - 1);
  expect_error("cola", "CoLA", "dev", 1, "CoLA/dev.tsv", ":2:", "NUL byte");
  write_text("CoLA", "test.tsv", "index\tsentence\n0\ta\tb\n");
  expect_error("cola", "CoLA", "test", 0, "CoLA/test.tsv", ":2:", "too many columns");
  const char *stsb_hdr =
      "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
  char buf[1024];
  snprintf(buf, sizeof buf, "%s0\tg\tf\ty\t1\tn\tn\ta\tb\t5.000\n1\tg\tf\ty\t2\tn\tn\ta\tb\t5.5\n", stsb_hdr);
  write_text("STS-B", "train.tsv", buf);
  expect_error("stsb", "STS-B", "train", 1, "STS-B/train.tsv", ":3:", "score outside [0,5]");
  snprintf(buf, sizeof buf, "%s0\tg\tf\ty\t1\tn\tn\ta\tb\t4.2x\n", stsb_hdr);
  write_text("STS-B", "dev.tsv", buf);
  expect_error("stsb", "STS-B", "dev", 1, "STS-B/dev.tsv", ":2:", "unparsable score");
  write_text("MRPC", "train.tsv",
             "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n1\t1\t2\ta\tb\r\n0\t3\t4\tc\td\r\n");
  pb_dataset ds;
  CHECK(pb_glue_load(pb_task_find("mrpc"), g_tmp, "train", 1, &ds) == PB_OK && ds.n == 2 &&
            strcmp(ds.ex[1].b, "d") == 0,
        "MRPC with BOM and CRLF loads: %s", pb_last_error());
  pb_dataset_free(&ds);
  write_text("MRPC", "dev.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n2\t1\t2\ta\tb\n");
  expect_error("mrpc", "MRPC", "dev", 1, "MRPC/dev.tsv", ":2:", "label 2 for binary task");
}

int main(void) {
  snprintf(g_tmp, sizeof g_tmp, "/tmp/pb_test_glue_XXXXXX");
  if (!mkdtemp(g_tmp)) {
    printf("FAIL mkdtemp\n");
    return 1;
  }
  test_registry();
  test_real();
  test_written();
  test_malformed();
  for (int i = g_nmade - 1; i >= 0; i--) remove(g_made[i]);
  rmdir(g_tmp);
  printf(failures ? "test_glue: %d FAILED\n" : "test_glue: all passed\n", failures);
  return failures ? 1 : 0;
}
