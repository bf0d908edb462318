# dump.R — writes the Amazon Fine Foods subset of the R package modeldata (small_fine_foods:
# training_data, testing_data) as a byte-exact, locale-independent tab-separated dump for convert.py.
#
#   Rscript dump.R OUT_FILE                 # data(small_fine_foods, package = "modeldata")
#   Rscript dump.R --rda FILE.rda OUT_FILE  # load() FILE instead (crafted test data); it must define
#                                           # the data frames training_data and testing_data
#
# OUT_FILE lines, fields separated by TAB:
#   #modeldata<TAB><package version or "rda:FILE">          (first line)
#   split  row  product  score  mark  review_hex             (header)
#   train|test  <1-based row in its data frame>  <product>  <score>  <Encoding() mark>  <hex>
# review_hex is the lower-case hex of the review's bytes exactly as R stores them (charToRaw), so no
# locale, quoting or re-encoding step can alter them; an NA review or score is written as the field
# "NA" (hex of real text never is). Strings marked "latin1" are the only ones re-encoded
# (iconv to UTF-8); convert.py counts them. The file is written to OUT_FILE.tmp.<pid> and renamed.
# Exit status: 0 ok, 2 bad usage or the data cannot be loaded.

fail <- function(...) {
    cat("dump.R: ", ..., "\n", sep = "", file = stderr())
    quit(save = "no", status = 2)
}

args <- commandArgs(trailingOnly = TRUE)
rda <- NULL
if (length(args) == 3 && args[1] == "--rda") {
    rda <- args[2]
    out <- args[3]
} else if (length(args) == 1 && !startsWith(args[1], "-")) {
    out <- args[1]
} else {
    fail("usage: Rscript dump.R [--rda FILE.rda] OUT_FILE")
}

env <- new.env()
if (is.null(rda)) {
    if (!requireNamespace("modeldata", quietly = TRUE))
        fail("R package 'modeldata' is not installed (Debian: r-cran-modeldata; run make deps)")
    source_tag <- as.character(utils::packageVersion("modeldata"))
    ok <- tryCatch({
        utils::data("small_fine_foods", package = "modeldata", envir = env)
        TRUE
    }, warning = function(w) conditionMessage(w), error = function(e) conditionMessage(e))
    if (!isTRUE(ok)) fail("modeldata ", source_tag, ": data(small_fine_foods) failed: ", ok)
} else {
    if (!file.exists(rda)) fail(rda, ": no such file")
    ok <- tryCatch({
        load(rda, envir = env)
        TRUE
    }, warning = function(w) conditionMessage(w), error = function(e) conditionMessage(e))
    if (!isTRUE(ok)) fail(rda, ": cannot load: ", ok)
    source_tag <- paste0("rda:", rda)
}

# Returns the hex of the bytes of each element of x (NA stays NA); latin1-marked strings are
# converted to UTF-8 first.
bytes_hex <- function(x, where) {
    vapply(seq_along(x), function(i) {
        s <- x[[i]]
        if (is.na(s)) return(NA_character_)
        if (Encoding(s) == "latin1") s <- iconv(s, "latin1", "UTF-8")
        if (is.na(s)) fail(where, " row ", i, ": latin1 string not convertible")
        paste(as.character(charToRaw(s)), collapse = "")
    }, character(1))
}

# Checks one data frame and returns its dump lines.
dump_frame <- function(name, split) {
    if (!exists(name, envir = env, inherits = FALSE)) fail(source_tag, ": no object '", name, "'")
    df <- get(name, envir = env)
    if (!is.data.frame(df)) fail(source_tag, ": '", name, "' is not a data frame")
    for (col in c("product", "review", "score"))
        if (!col %in% names(df)) fail(source_tag, ": '", name, "' has no column '", col, "'")
    if (!is.character(df$review)) fail(source_tag, ": ", name, "$review is not character")
    score <- as.character(df$score)   # factor (levels great, other) in modeldata 1.1.0
    product <- as.character(df$product)
    bad <- grepl("[\t\n\r]", c(score, product)) & !is.na(c(score, product))
    if (any(bad)) fail(source_tag, ": ", name, ": TAB or line break in a product or score field")
    mark <- ifelse(is.na(df$review), "NA", Encoding(df$review))
    hex <- bytes_hex(df$review, name)
    paste(split, seq_len(nrow(df)), ifelse(is.na(product), "NA", product),
          ifelse(is.na(score), "NA", score), mark, ifelse(is.na(hex), "NA", hex), sep = "\t")
}

lines <- c(paste0("#modeldata\t", source_tag),
           "split\trow\tproduct\tscore\tmark\treview_hex",
           dump_frame("training_data", "train"),
           dump_frame("testing_data", "test"))

tmp <- paste0(out, ".tmp.", Sys.getpid())
con <- tryCatch(file(tmp, open = "wb"), error = function(e) fail(tmp, ": ", conditionMessage(e)),
                warning = function(w) fail(tmp, ": ", conditionMessage(w)))
writeLines(lines, con, sep = "\n", useBytes = TRUE)
close(con)
if (!file.rename(tmp, out)) {
    unlink(tmp)
    fail(out, ": cannot rename ", tmp)
}
