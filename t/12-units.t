# Builds t/unit/units.c against the objects of the nginx under test and runs
# it: the engine's parsing and escaping, each on its own.  Its output is the
# TAP of this file, and one test more: 10 000 hosts reduced by the gate and
# by the Public Suffix List's own algorithm agree (t/unit/psl.py).

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Basename qw(dirname);
use IcpGate::Test;

my $t = IcpGate::Test->new;
my $nginx = $t->nginx_bin;
my $objs = dirname(dirname($nginx)) . '/nginx/objs';

# the compiler, its flags and the libraries nginx itself was built with,
# and nginx.o with its main() renamed: util/build.sh leaves them beside the
# objects, for icp-gate-import and for this test
my $work = dirname($objs);
unless (-f "$work/import.flags" && -f "$work/nginx-nomain.o") {
    print "1..0 # SKIP no nginx objects next to $nginx\n";
    exit 0;
}

open my $fh, '<', "$work/import.flags" or die "$work/import.flags: $!";
my ($compile, $libs) = map { chomp; $_ } <$fh>;

my @objects = grep { !m{/nginx\.o$} } split /\n/,
    `find '$objs' -name '*.o'`;
my $dir = $t->dir;

my @sanitize = $ENV{ICP_GATE_ASAN} ? ('-fsanitize=address,undefined') : ();
my @cmd = (split(' ', $compile), @sanitize,
           '-o', "$dir/units", "$FindBin::Bin/unit/units.c",
           "$work/nginx-nomain.o", @objects, split(' ', $libs));
system(join(' ', map { "'$_'" } @cmd) . " > '$dir/cc.log' 2>&1") == 0 or do {
    print "1..1\nnot ok 1 - t/unit/units.c builds\n";
    print "# $_\n" for split /\n/, $t->read_file('cc.log') // '';
    exit 1;
};

$ENV{UBSAN_OPTIONS} = "print_stacktrace=1:halt_on_error=1";
$ENV{ASAN_OPTIONS} = "detect_leaks=0";

# the units' TAP, its plan moved to the end
my @tap = `'$dir/units'`;
my $failed = $?;
my ($plan) = map { /^1\.\.(\d+)$/ ? $1 : () } @tap;
print grep { !/^1\.\.\d+$/ } @tap;

my $list = '/usr/share/publicsuffix/public_suffix_list.dat';
my $n = ($plan // 0) + 1;
if (-f $list) {
    my $cmd = "python3 '$FindBin::Bin/unit/psl.py' '$dir/units' --list '$list'";
    my $diff = `$cmd 2>&1`;
    my $ok = $? == 0;
    $failed ||= !$ok;
    print $ok ? "ok $n" : "not ok $n", " - 10 000 hosts: the gate and the ",
        "Public Suffix List's algorithm agree\n", $diff;
} else {
    print "ok $n # SKIP no $list\n";
}
print "1..$n\n";
exit($failed || !defined $plan ? 1 : 0);
