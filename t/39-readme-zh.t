# README.md and README.zh-CN.md document the same directives, and together
# every directive the module defines: an operator who reads either finds
# each one, and a directive added to the code or to one README alone fails
# here.  Needs no nginx.
#
# A directive is documented by a table row whose first cell gives its
# syntax in backquotes, name first and ending in ";" (`icp_gate_zone
# NAME:SIZE;`, `icp_gate_metrics;`): metric names also start table rows
# with `icp_gate_…`, but never end in ";".  Every row of a table headed
# "directive" (or "指令") must give one, so that a row written another way
# is not silently left out.  The module defines a directive where an
# ngx_command_t names it: ngx_string("icp_gate…") followed by its context
# flags (NGX_…_CONF), which tells it from a variable or a module's name.

use v5.36;
use utf8;
use FindBin;
use Test::More;

my $repo = "$FindBin::Bin/..";

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

sub slurp ($path) {
    open my $fh, '<:encoding(UTF-8)', $path or die "$path: $!";
    local $/;
    return <$fh>;
}

# the cells of a table row; a "|" inside a cell is written "\|"
sub cells ($line) {
    my @cells = split /(?<!\\)\|/, $line;
    shift @cells;
    s/^\s+|\s+$//g for @cells;
    return @cells;
}

# directive name => the first line of README that documents it; and the
# rows of its directive tables that give no directive's syntax
sub readme_directives ($file) {
    my (%documented, @unreadable, $in_code, $table_header);
    my $number = 0;

    for my $line (split /\n/, slurp("$repo/$file")) {
        $number++;

        if ($line =~ /^\s*```/) {
            $in_code = !$in_code;
            next;
        }

        if ($in_code || $line !~ /^\s*\|/) {
            undef $table_header;
            next;
        }

        my @cells = cells($line);

        if (!defined $table_header) {
            $table_header = $cells[0];
            next;
        }

        next if $cells[0] =~ /^:?-+:?$/;

        my @names = $cells[0] =~ /`(icp_gate\w*)(?:\s[^`]*)?;`/g;

        push @unreadable, "$file:$number: $line"
            if !@names && $table_header =~ /^(directive|指令)$/;

        $documented{$_} //= $number for @names;
    }

    is_deeply \@unreadable, [],
        "$file: every row of a directive table gives a directive's syntax"
        or diag join "\n", @unreadable;

    return \%documented;
}

sub source_directives {
    my %defined;

    for my $path (glob("$repo/src/*.[ch]"), glob("$repo/*.[ch]")) {
        my $code = slurp($path);
        my ($file) = $path =~ m{([^/]+)$};

        while ($code =~ /ngx_string\("(icp_gate\w*)"\),[\s\\]*([\w|]+)/g) {
            my ($name, $next) = ($1, $2);
            $defined{$name} //= $file if $next =~ /NGX_\w*CONF/;
        }
    }

    return \%defined;
}

sub missing ($have, $want) {
    return [sort grep { !exists $have->{$_} } keys %$want];
}

my $en = readme_directives('README.md');
my $zh = readme_directives('README.zh-CN.md');
my $src = source_directives();
my %readmes = (%$en, %$zh);

# the extraction itself: each side finds the directives everybody knows
for (['README.md' => $en], ['README.zh-CN.md' => $zh], [source => $src]) {
    my ($what, $found) = @$_;
    ok exists $found->{icp_gate_zone} && exists $found->{icp_gate}
       && exists $found->{icp_gate_metrics},
       "$what: directives found (" . keys(%$found) . ')';
}

for ([$en, $zh, 'README.md', 'README.zh-CN.md'],
     [$zh, $en, 'README.zh-CN.md', 'README.md'])
{
    my ($from, $to, $from_file, $to_file) = @$_;
    my $missing = missing($to, $from);

    is_deeply $missing, [],
        "every directive of $from_file is documented in $to_file"
        or diag "missing from $to_file: "
                . join ', ', map { "$_ ($from_file:$from->{$_})" } @$missing;
}

my $undocumented = missing(\%readmes, $src);

is_deeply $undocumented, [], 'every directive of the source is documented'
    or diag 'in neither README: '
            . join ', ', map { "$_ ($src->{$_})" } @$undocumented;

my $unknown = missing($src, \%readmes);

is_deeply $unknown, [], 'every documented directive is in the source'
    or diag 'documented, but no module defines it: ' . join ', ', @$unknown;

done_testing;
