set unwindonsignal on
handle all nostop noprint pass
handle SIGSEGV SIGBUS SIGILL SIGFPE SIGABRT stop print nopass
attach 31680
printf "PEEKA start\n"
set $r = ((unsigned int (*)(unsigned int))0x7f0a41d7fd50)(2)
printf "PEEKA after %d\n", $r
detach
quit
