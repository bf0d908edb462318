/* train.h — `slimtune train`: LoRA fine-tuning of a frozen base on a prepared dataset. */
#ifndef SLIM_TRAIN_H
#define SLIM_TRAIN_H
/* Entry point of `slimtune train --config FILE [...]`; argv[0] = "train". Returns the exit status. */
int train_main(int argc, char **argv);
#endif
