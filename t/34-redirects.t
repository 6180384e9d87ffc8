# Internal redirects: only a refusal is kept.  A request judged in a
# location that lets it through (icp_gate_region overseas, icp_gate
# dry_run, icp_gate_on_error allow after a failed lookup, dry_run before
# its verdict) and redirected into a location gated with "icp_gate on"
# (try_files, error_page, X-Accel-Redirect, a named location, rewrite ...
# last on the way) is judged again there: an unfiled host is refused, a
# filed one served; the variables tell the last judgement and the
# rejection log has one refusal a request.  A refused request's error page
# is served, not judged again.  With nginx-http-flv-module, the same for
# HTTP-FLV plays.

use v5.36;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use IcpGate::Test;
use IcpGate::Conf qw(gate_conf);
use IcpGate::Rtmp;

my $t = IcpGate::Test->gated(
    redis => 1,
    api => { 'filed.cn' => 'filed', 'broken.cn' => '500',
             'late.cn' => ['unfiled', delay_ms => 500],
             'latefiled.cn' => ['filed', delay_ms => 500],
             'hang.cn' => 'hang' },
    api_default => 'unfiled');

# HTTP-FLV needs the fork and ffmpeg; the rest runs on any build
my $flv = $t->rtmp_host eq 'flv'
          && system('sh', '-c', 'command -v ffmpeg >/dev/null') == 0;

# where a request is judged first, and how it is let through there
my %sources = (
    intl    => 'icp_gate_region overseas;',
    canary  => 'icp_gate dry_run;',
    lenient => 'icp_gate_on_error allow;',
);

# how it leaves for the gated location /mainland/
my %ways = (
    try_files   => 'try_files $uri /mainland/secret.txt;',
    error_page  => 'error_page 404 = /mainland/secret.txt;',
    accel       => 'proxy_pass http://127.0.0.1:%%PORT_upstream%%;',
    named       => 'try_files $uri @mainland;',
    rewrite     => 'try_files $uri /rewrite/secret.txt;',
    pretty      => 'try_files $uri /pretty/secret.txt;',
    'flv-http'  => 'try_files $uri /flv-http?$args;',
    'flv-rtmp'  => 'try_files $uri /flv-rtmp?$args;',
);
my @http_ways = qw(try_files error_page accel named rewrite);
my @flv_ways = $flv ? qw(flv-http flv-rtmp) : ();

my $locations = '';
for my $source (sort keys %sources) {
    $locations .= "        location /$source/ {\n"
                . "            $sources{$source}\n";
    for my $way (sort keys %ways) {
        next if $way =~ /^flv/ && !$flv;
        $locations .= "            location /$source/$way/ { $ways{$way} }\n";
    }
    $locations .= "        }\n";
}

my $flv_locations = $flv ? <<'EOF' : '';
        # HTTP-FLV: the HTTP gate (application "open" has no RTMP gate)
        location /flv-http {
            flv_live on;
        }

        # HTTP-FLV: the RTMP gate (application "live") alone; its refusal
        # page is in a location the HTTP gate gates
        location /flv-rtmp {
            flv_live on;
            icp_gate off;
            icp_gate_status 451;
            error_page 451 /refused.html;
        }
EOF

my $conf = gate_conf($t,
    main => $flv ? '%%AUTO_PUSH%%' : '',
    server => <<"EOF" . $locations . $flv_locations,
        # where every redirect leads: gated as the server is
        location /mainland/ { }
        location \@mainland { rewrite ^ /mainland/secret.txt break; }
        location /rewrite/ { rewrite ^/rewrite/(.*)\$ /mainland/\$1 last; }
        location /pretty/ { error_page 403 /refused.html; }
        location = /refused.html { internal; }

        # gated as /mainland/ is
        location /same/ { try_files \$uri /mainland/secret.txt; }

EOF
    servers => <<'EOF');
    # the upstream of the X-Accel-Redirect cases, and the metrics
    server {
        listen 127.0.0.1:%%PORT_upstream%%;
        icp_gate off;

        location / {
            add_header X-Accel-Redirect /mainland/secret.txt;
            return 200 "the upstream's own body\n";
        }

        location = /metrics { icp_gate_metrics; }
    }
EOF

$conf .= <<'EOF' if $flv;

rtmp {
    server {
        listen 127.0.0.1:%%RTMP_PORT%%;

        application live {
            live on;
            icp_gate on;
            icp_gate_log %%DIR%%/reject-rtmp.log;
        }

        application open {
            live on;
        }
    }
}
EOF

$t->write_conf($conf);
mkdir $t->dir . '/html/mainland';
mkdir $t->dir . '/html/pretty';
for my $file ('mainland/secret.txt', 'pretty/secret.txt') {
    open my $fh, '>', $t->dir . "/html/$file" or die;
    print $fh "mainland content\n";
    close $fh;
}
$t->start_nginx;

my $slow = $ENV{ICP_GATE_ASAN} ? 3 : 1;    # the sanitizers' build is slower

# the refusals (dry_run false) and the would-be ones (dry_run true) of a host
sub logged($host, $log = 'reject.log') {
    my @lines = grep { ($_->{host} // '') eq $host } $t->log_lines($log);
    return (scalar(grep { !$_->{dry_run} } @lines),
            scalar(grep { $_->{dry_run} } @lines));
}

sub decisions($result, $reason) {
    my $r = $t->http(port => $t->port('upstream'), host => 'ops',
                     path => '/metrics');
    my ($n) = $r->{body} =~ /^icp_gate_decisions_total\{proto="http",result="$result",reason="$reason"\} (\d+)$/m;
    return $n // 0;
}

# -- a host let through where it is judged first, into icp_gate on ----------

for my $source (sort keys %sources) {
    for my $way (@http_ways) {
        my $path = "/$source/$way/missing.txt";
        (my $label = "$source-$way") =~ tr/_/-/;    # a valid host name

        # lenient lets a failed lookup through; the others an unfiled host
        my $weak = $source eq 'lenient' ? 'broken' : 'unfiled';
        my $host = "$label.$weak.cn";
        my $r = $t->get($host, $path);
        is $r->{status}, 403, "$source, $way: $weak host refused in /mainland/";
        unlike $r->{body}, qr/mainland content/, 'none of its content';
        is $r->{headers}{'x-result'}, 'deny', '$icp_gate_result: deny';
        is $r->{headers}{'x-reason'},
            $source eq 'lenient' ? 'lookup_failed' : 'unfiled',
            '$icp_gate_reason: why';
        # the canary's line of a domain not seen yet waits for its verdict
        my $lines = $source eq 'canary' ? [1, 1] : [1, 0];
        $t->wait_for(sub { "@{[logged($host)]}" eq "@$lines" }, 2 * $slow);
        is_deeply [logged($host)], $lines,
            $source eq 'canary'
            ? 'logged as refused once, and as dry_run once by the canary'
            : 'logged as refused once, no dry_run line';

        $host = "$label.filed.cn";
        $r = $t->get($host, $path);
        is $r->{status}, 200, "$source, $way: filed host served";
        like $r->{body}, qr/mainland content/, 'the mainland content';
        is $r->{headers}{'x-result'}, 'allow', '$icp_gate_result: allow';
        is_deeply [logged($host)], [0, 0], 'nothing logged';
    }
}

# -- dry_run before the verdict: the gated location waits for it ------------

for my $case (['late', 403, 'deny'], ['latefiled', 200, 'allow']) {
    my ($domain, $status, $result) = @$case;
    my $start = time;
    my $r = $t->get("play.$domain.cn", '/canary/try_files/missing.txt');
    my $took = time - $start;
    is $r->{status}, $status,
        "dry_run let $domain.cn through before its verdict: $status in /mainland/";
    is $r->{headers}{'x-result'}, $result, "\$icp_gate_result: $result";
    cmp_ok $took, '>=', 0.3, sprintf 'after waiting for the verdict (%.2f s)', $took;
}
my ($refused, $would);
ok $t->wait_for(sub { ($refused, $would) = logged('play.late.cn'); $would }, 3 * $slow),
    'the canary logs its would-be refusal once the verdict is in';
is_deeply [$refused, $would], [1, 1], 'one refusal, one would-be refusal';
is_deeply [logged('play.latefiled.cn')], [0, 0], 'the filed one: nothing';

# a client that leaves while its second judgement is held: nothing is left
# to wake (the sanitizers' build would see a freed request touched)
my $gone = $t->get('play.hang.cn', '/intl/try_files/missing.txt', timeout => 0.5);
ok $gone->{timed_out}, 'exempt, then held in /mainland/ for a hanging API';
is $t->get('play.filed.cn', '/intl/try_files/missing.txt')->{status}, 200,
    'the worker serves on once that client has gone';

# -- a refusal is kept: its error page is served, judged once ---------------

for my $case (['pretty', '/pretty/x'],
              ['intl-pretty', '/intl/pretty/missing.txt'],
              ['canary-pretty', '/canary/pretty/missing.txt'])
{
    my ($label, $path) = @$case;
    my $host = "$label.unfiled.cn";
    my $r = $t->get($host, $path);
    is $r->{status}, 403, "$path, unfiled: refused";
    like $r->{body}, qr/custom refusal page/, 'with the error page of /pretty/';
    is $r->{headers}{'x-result'}, 'deny', 'the error page sees deny';
    is((logged($host))[0], 1, 'logged as refused once');
}
unlike $t->error_log, qr/rewrite or internal redirection cycle/, 'no loop';

# -- the same settings under another location: judged once ------------------

my $before = decisions('allow', 'none');
my $r = $t->get('same.filed.cn', '/same/missing.txt');
is $r->{status}, 200, 'try_files between two locations gated alike: served';
is decisions('allow', 'none') - $before, 1, 'judged once';
$before = decisions('allow', 'none');
$r = $t->get('again.filed.cn', '/intl/try_files/missing.txt');
is decisions('allow', 'none') - $before, 1,
    'exempt, then judged again: one allow';

# -- HTTP-FLV ---------------------------------------------------------------

SKIP: {
    skip 'HTTP-FLV: built without nginx-http-flv-module or ffmpeg', 1
        unless $flv;

    my $rtmp = $t->port('rtmp');
    my $pub = publish_start($t, tcurl($t, 'push.filed.cn'), 'room');
    my $open = publish_start($t, tcurl($t, 'push.filed.cn', 'open'), 'room',
                             app => 'open');

    # curl for $secs at most: (status, body)
    my $flv_get = sub ($host, $path, $secs) {
        $secs *= $slow;
        my $body = $t->dir . '/body-' . int(rand 1e9);
        my $status = `curl -s -m $secs -o '$body' -w '%{http_code}' -H 'Host: $host' 'http://127.0.0.1:${\ $t->port('http')}$path'`;
        return ($status, $t->read_file($body) // '');
    };

    # both publishers on the air, through each way a play goes; one that
    # gave up (a loaded machine: ffmpeg's connect timed out) starts again
    ok $t->wait_for(sub {
        for my $p ($pub, $open) {
            next unless waitpid($p->{pid}, POSIX::WNOHANG()) == $p->{pid};
            diag "a publisher ended, starting it again: "
                . ($t->read_file($p->{log}) // '');
            my %app = $p == $open ? (app => 'open') : ();
            my $again = publish_start($t, tcurl($t, 'push.filed.cn',
                                                %app ? 'open' : ()),
                                      'room', %app);
            %$p = %$again;
        }
        ($flv_get->('wait.filed.cn', "/flv-http?port=$rtmp&app=open&stream=room", 1))[1]
            =~ /^FLV/
        && ($flv_get->('wait.filed.cn', "/flv-rtmp?port=$rtmp&app=live&stream=room", 1))[1]
            =~ /^FLV/ }, 20 * $slow), 'the streams are published'
        or diag 'publishers: ' . ($t->read_file($pub->{log}) // '') . ' / '
              . ($t->read_file($open->{log}) // '');

    # no redirect before: the error page of the RTMP gate's refusal
    my ($status, $body) = $flv_get->('direct.unfiled.cn',
                                     "/flv-rtmp?port=$rtmp&app=live&stream=room", 3);
    is $status, '451', 'the RTMP gate refuses an unfiled play';
    like $body, qr/custom refusal page/, 'through its error page';
    is((logged('direct.unfiled.cn', 'reject-rtmp.log'))[0], 1,
       'logged as refused once, by the RTMP gate');
    is((logged('direct.unfiled.cn'))[0], 0,
       'not by the HTTP gate of the error page');

    for my $source ('intl', 'canary') {
        for my $way (@flv_ways) {
            my $app = $way eq 'flv-http' ? 'open' : 'live';
            my $path = "/$source/$way/x?port=$rtmp&app=$app&stream=room";
            my $gate = $way eq 'flv-http' ? 'the HTTP gate' : 'the RTMP gate';
            my $code = $way eq 'flv-http' ? '403' : '451';

            my $host = "$source-$way.unfiled.cn";
            my ($status, $body) = $flv_get->($host, $path, 3);
            is $status, $code, "$source into $way: $gate refuses an unfiled play";
            unlike $body, qr/^FLV/, 'no FLV';
            if ($way eq 'flv-http') {
                is((logged($host))[0], 1, 'logged as refused once');

            } else {
                # the HTTP gate keeps the RTMP gate's refusal
                like $body, qr/custom refusal page/, 'with its error page';
                is((logged($host, 'reject-rtmp.log'))[0], 1,
                   'logged as refused once, by the RTMP gate');
                is((logged($host))[0], 0, 'not by the HTTP gate');
            }

            ($status, $body) = $flv_get->("$source-$way.filed.cn", $path, 2);
            is $status, '200', "$source into $way: a filed play";
            like $body, qr/^FLV/, 'FLV flows';
        }
    }

    client_stop($t, $_) for $pub, $open;
}

$t->finish;
