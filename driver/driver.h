/* driver.h — one function per dartsc subcommand; each returns the process exit code. */
#ifndef DARTSC_DRIVER_H
#define DARTSC_DRIVER_H

int dartsc_cmd_version(int argc, char **argv);
int dartsc_cmd_check(int argc, char **argv);
int dartsc_cmd_inspect(int argc, char **argv);
int dartsc_cmd_search(int argc, char **argv);

#endif
