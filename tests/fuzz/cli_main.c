/* The CLI's main under another name, so that the CLI fuzz target and the replay test can call it
 * like a function (cli/main.c itself stays untouched and keeps building the real program). */
#define main popsteer_main
int popsteer_main(int argc, char **argv);
#include "../../cli/main.c"
