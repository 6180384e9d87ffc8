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

unless (-f "$objs/Makefile") {
    print "1..0 # SKIP no nginx objects next to $nginx\n";
    exit 0;
}

# the compiler, include dirs and libraries nginx itself was built with
open my $mk, '<', "$objs/Makefile" or die "$objs/Makefile: $!";
my $makefile = do { local $/; <$mk> };
my ($cc) = $makefile =~ /^CC =\s*(\S+)/m;
my ($incs) = $makefile =~ /^ALL_INCS = (.*?)\n\n/ms;
my ($cflags) = $makefile =~ /^CFLAGS =\s*(.*)$/m;
my ($link) = $makefile =~ /\$\(LINK\) -o objs\/nginx \\\n(.*?)\n\n/s;
my @libs = grep { /^-[lW]/ } split /[\s\\]+/, $link;
my @incs = map { s{^(?!/)}{}r } grep { $_ ne '-I' } split /[\s\\]+/, $incs;
my $src = dirname($objs);
@incs = map { m{^/} ? "-I$_" : "-I$src/$_" } @incs;

# every object of the build; nginx.o with its main() renamed
my @objects = grep { !m{/nginx\.o$} } split /\n/,
    `find '$objs' -name '*.o'`;
my $dir = $t->dir;
system('objcopy', '--redefine-sym', 'main=ngx_nginx_main',
       "$objs/src/core/nginx.o", "$dir/nginx-nomain.o") == 0
    or die "objcopy failed\n";

my @sanitize = $ENV{ICP_GATE_ASAN} ? ('-fsanitize=address,undefined') : ();
my @cmd = ($cc // 'cc', split(' ', $cflags), @sanitize, @incs,
           '-o', "$dir/units", "$FindBin::Bin/unit/units.c",
           "$dir/nginx-nomain.o", @objects, @libs);
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
