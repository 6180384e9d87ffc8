# Filing sources as they really answer: the profiles of conf/filing-api/,
# each against the stand-in answering in that source's shape (filed, not
# filed, the source's own error, a missing field, a value no map knows),
# then every mapping rule on answers written out byte for byte: JSON
# Pointers (array indices, escapes, UTF-8 keys), value maps of strings,
# numbers and booleans, absent values, the presence rule, the envelope,
# the statuses that mean "not filed", the default region, the domain
# check, and both request methods.

use v5.36;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use IcpGate::Test;

my $json = JSON::PP->new->utf8->canonical;

# one nginx a configuration, the filing API stand-in shared, no Redis: the
# API's answer is the verdict
my $api = IcpGate::Test->new;
$api->start_api;

sub gate($main) {
    my $t = IcpGate::Test->new;
    $t->{ports}{api} = $api->api_port;
    $t->write_conf(IcpGate::Conf::gate_conf($t, redis => '', api => '',
                                            main => $main));
    $t->start_nginx;
    return $t;
}

sub profile($name) {
    my $text = $api->read_file("$FindBin::Bin/../conf/filing-api/$name.conf")
        // die "no profile $name";
    my $port = $api->api_port;

    # the source's origin becomes the stand-in's route for its shape
    $text =~ s{"https://[^/"]+}{"http://127.0.0.1:$port/$name}
        or die "$name: no URL";
    return $text;
}

sub request_of($domain) {
    return $json->decode($api->_api_control('request', domain => $domain));
}

sub failures_logged($t, $re) {
    return scalar(() = $t->error_log =~ /$re/g);
}

# ---------------------------------------------------------------- profiles

my %profile = (
    aliyun => {
        icp => '', error => qr/with status 400/,
        error200 => qr{without "/Status"},
        missing => qr{without "/Status"},
        odd => qr{"/Status": "DomainIsChecking", which icp_gate_api_status does not map},
        request => sub ($r, $d) {
            $r->{method} eq 'GET'
                && $r->{query} =~ /(?:^|&)Action=CheckCdnDomainICP(?:&|$)/
                && $r->{query} =~ /(?:^|&)DomainName=\Q$d\E(?:&|$)/
        },
    },
    tencent => {
        icp => '',
        error => qr{"/Response/Error": \{"Code":"AuthFailure\.SignatureFailure".*not a success},
        error200 => qr{"/Response/Error": \{"Code":"AuthFailure\.SignatureFailure".*not a success},
        missing => qr{without "/Response/Domains/0/Disable"},
        odd => qr{"/Response/Domains/0/Disable": "overdue", which icp_gate_api_status does not map},
        request => sub ($r, $d) {
            my $body = eval { $json->decode($r->{body}) } // {};
            $r->{method} eq 'POST'
                && ($body->{Filters}[0]{Value}[0] // '') eq $d
                && $body->{Filters}[0]{Name} eq 'domain'
        },
        headers => { 'content-type' => 'application/json',
                     'x-tc-action' => 'DescribeDomains' },
    },
    miit => {
        icp => '京ICP备10046444号-9',
        error => qr{"/code": 500, not a success},
        error200 => qr{"/code": 500, not a success},
        missing => qr{without "/data/isRecorded"},
        odd => qr{"/data/isRecorded": "unknown", which icp_gate_api_status does not map},
        request => sub ($r, $d) {
            $r->{method} eq 'GET' && $r->{query} eq "domain=$d"
        },
        headers => { 'x-api-key' => 'your-key' },
    },
    thirdparty => {
        icp => '粤ICP备2020012345号-1',
        error => qr{"/code": 403, not a success},
        error200 => qr{"/code": 403, not a success},
        missing => qr{without "/data/exists"},
        odd => qr{"/data/exists": 2, which icp_gate_api_status does not map},
        request => sub ($r, $d) {
            $r->{method} eq 'POST' && $r->{body} eq "domain=$d"
        },
        headers => { 'content-type' => 'application/x-www-form-urlencoded' },
    },
    jdcloud => {
        icp => '', error => qr/with status 400/,
        error200 => qr{"/error": \{"code":400,"status":"INVALID_ARGUMENT",.*, not a success},
        missing => qr{without "/result/icpStatus"},
        odd => qr{"/result/icpStatus": "yes", which icp_gate_api_status does not map},
        request => sub ($r, $d) {
            $r->{method} eq 'GET' && $r->{query} eq "domain=$d"
        },
    },
);

for my $name (sort keys %profile) {
    my $p = $profile{$name};
    my $t = gate(profile($name));

    $api->api_set("filed-$name.cn", 'filed');
    $api->api_set("unfiled-$name.cn", 'unfiled');
    $api->api_set("revoked-$name.cn", 'revoked');
    $api->api_set("error-$name.cn", 'apierror');
    $api->api_set("error200-$name.cn", 'error200');
    $api->api_set("missing-$name.cn", 'missing');
    $api->api_set("odd-$name.cn", 'oddvalue');

    my $r = $t->get("live.filed-$name.cn");
    is $r->{status}, 200, "$name: a filed domain is let in";
    my $icp = $r->{headers}{'x-icp'} // '';
    utf8::decode($icp);
    is $icp, $p->{icp}, "$name: with the licence the answer gives"
        . ($p->{icp} ? '' : ' (none)');
    ok $p->{request}->(request_of("filed-$name.cn"), "filed-$name.cn"),
        "$name: the request has the source's method, query or body"
        or diag explain request_of("filed-$name.cn");
    my $headers = $api->api_headers("filed-$name.cn");
    for my $h (sort keys %{ $p->{headers} // {} }) {
        is $headers->{$h}, $p->{headers}{$h}, "$name: header $h";
    }

    for my $d ("unfiled-$name.cn", "revoked-$name.cn") {
        $r = $t->get("live.$d");
        is $r->{status}, 403, "$name: $d is refused";
        is $r->{headers}{'x-reason'}, 'unfiled', "$name: $d: unfiled";
    }

    for my $case ([error => 'error'], [error200 => 'error200'],
                  [missing => 'missing'], [odd => 'odd']) {
        my ($prefix, $key) = @$case;
        my $d = "$prefix-$name.cn";
        $r = $t->get("live.$d");
        is $r->{status}, 403, "$name: $d is refused";
        is $r->{headers}{'x-reason'}, 'lookup_failed',
            "$name: $d: a failed lookup, never unfiled";
        ok $t->wait_for(sub { failures_logged($t, $p->{$key}) >= 1 }),
            "$name: $d: the error log says why"
            or diag join "\n", grep { /filing API/ } split /\n/, $t->error_log;
    }

    # asked again for another name of the same domain within error_ttl:
    # not asked again, not logged again
    $t->get("www.odd-$name.cn");
    is failures_logged($t, $p->{odd}), 1,
        "$name: the unknown value is logged once";
    is $api->api_count("odd-$name.cn"), 1, "$name: and asked once";

    $t->stop_nginx;
    $t->done_cleanly;
    $api->api_clear;
}

# the region a source names exempts an overseas domain, as the gate's own
# answer's would
{
    my $t = gate(profile('tencent') . "\n");
    $api->api_set('abroad-tencent.cn', 'unfiled', region => 'overseas');
    my $r = $t->get('live.abroad-tencent.cn');
    is $r->{headers}{'x-result'}, 'exempt',
        'tencent: "Area": "overseas" on an unfiled domain exempts it';
    $t->stop_nginx;
    $t->done_cleanly;
    $api->api_clear;
}

# ---------------------------------------------------------------- rules

sub raw($domain, $body, $code = 200) {
    $api->api_set($domain, 'raw', body => $body, code => $code);
}

# numbers, strings and booleans in a value map; an array index; an
# escaped "/" in a key; UTF-8 keys and values; absent; an envelope in a 200;
# statuses meaning "not filed"
{
    my $t = gate(<<'EOF');
icp_gate_api "%%API_URL%%";
icp_gate_api_success /errcode 0;
icp_gate_api_status /result/0/mainStatus 6=filed 5=pending -4=unfiled
                    "停用=revoked" true=error absent=unfiled;
icp_gate_api_icp "/result/0/备案许可证号";
icp_gate_api_region "/result/0/area~1zone" 境内=mainland 境外=overseas;
icp_gate_api_unfiled_status 404 410;
EOF

    my @cases = (
        # domain, body (or [code, body]), status, reason or result, icp
        ['n6.cn', '{"errcode":0,"result":[{"mainStatus":6,"备案许可证号":"粤ICP备1号-1"}]}',
         200, 'allow', '粤ICP备1号-1', 'a number maps'],
        ['n6s.cn', '{"errcode":"0","result":[{"mainStatus":"6"}]}',
         200, 'allow', '', 'a number written as a string maps as its text'],
        ['n6r.cn', '{"errcode":0.0,"result":[{"mainStatus":6.0}]}',
         200, 'allow', '', 'a real maps as the number it is'],
        ['n5.cn', '{"errcode":0,"result":[{"mainStatus":5}]}',
         403, 'pending', '', 'another value, another status'],
        ['n-4.cn', '{"errcode":0,"result":[{"mainStatus":-4}]}',
         403, 'unfiled', '', 'a negative number'],
        ['stop.cn', '{"errcode":0,"result":[{"mainStatus":"停用"}]}',
         403, 'revoked', '', 'a UTF-8 value'],
        ['none.cn', '{"errcode":0,"result":[]}',
         403, 'unfiled', '', 'past the array\'s end: absent=unfiled'],
        ['null.cn', '{"errcode":0,"result":[{"mainStatus":null}]}',
         403, 'unfiled', '', 'null counts as absent'],
        ['abroad.cn', '{"errcode":0,"result":[{"mainStatus":-4,"area/zone":"境外"}]}',
         200, 'exempt', '', 'a region through an escaped "/" exempts'],
        ['home.cn', '{"errcode":0,"result":[{"mainStatus":-4,"area/zone":"境内"}]}',
         403, 'unfiled', '', 'a mainland region does not'],
        ['t.cn', '{"errcode":0,"result":[{"mainStatus":true}]}',
         403, 'lookup_failed', '', 'a value mapped to error'],
        ['f.cn', '{"errcode":0,"result":[{"mainStatus":false}]}',
         403, 'lookup_failed', '', 'a boolean no map knows'],
        ['n7.cn', '{"errcode":0,"result":[{"mainStatus":7}]}',
         403, 'lookup_failed', '', 'a number no map knows'],
        ['obj.cn', '{"errcode":0,"result":[{"mainStatus":{"v":6}}]}',
         403, 'lookup_failed', '', 'an object where a value should be'],
        ['env.cn', '{"errcode":40001,"result":[{"mainStatus":6}]}',
         403, 'lookup_failed', '', 'an envelope saying failure, in a 200'],
        ['noenv.cn', '{"result":[{"mainStatus":6}]}',
         403, 'lookup_failed', '', 'no envelope at all'],
        ['gone.cn', [410, 'gone'], 403, 'unfiled', '', '410 means not filed'],
        ['nf.cn', [404, ''], 403, 'unfiled', '', 'and 404 still'],
        ['forbidden.cn', [403, '{"errcode":0,"result":[{"mainStatus":6}]}'],
         403, 'lookup_failed', '', 'another status is a failed lookup, '
         . 'whatever its body'],
        ['garbage.cn', '{"errcode":0,', 403, 'lookup_failed', '',
         'a body that is not JSON'],
    );

    for my $c (@cases) {
        my ($d, $body, $status, $why, $icp, $what) = @$c;
        raw($d, ref $body ? ($body->[1], $body->[0]) : ($body));
        my $r = $t->get("live.$d");
        my $got = $status == 200 ? $r->{headers}{'x-result'}
                                 : $r->{headers}{'x-reason'};
        is "$r->{status} $got", "$status $why", "$what ($d)";
        if ($icp ne '') {
            my $h = $r->{headers}{'x-icp'} // '';
            utf8::decode($h);
            is $h, $icp, "$d: the licence from a UTF-8 key";
        }
    }

    my $log = $t->error_log;
    like $log, qr{answered "n7\.cn" with "/result/0/mainStatus": 7, which icp_gate_api_status does not map},
        'the unknown number is in the error log';
    like $log, qr{answered "t\.cn" with "/result/0/mainStatus": true, which icp_gate_api_status maps to error},
        'a value mapped to error says so';
    like $log, qr{answered "env\.cn" with "/errcode": 40001, not a success \(icp_gate_api_success\)},
        'the envelope\'s value is in the error log';
    like $log, qr{answered "noenv\.cn" with "/errcode": , not a success},
        'a missing envelope is named';
    like $log, qr{answered "forbidden\.cn" with status 403},
        'another status is named';

    $t->stop_nginx;
    $t->done_cleanly;
    $api->api_clear;
}

# the presence rule, an error object in a 200 (Huawei CDN's shape), the
# domain check, and a POST whose only "{domain}" is in its JSON body
{
    my $port = $api->api_port;
    my $t = gate(<<"EOF");
icp_gate_api "http://127.0.0.1:$port/any/icp";
icp_gate_api_method POST;
icp_gate_api_body '{"domain": "{domain}", "kind": "icp"}';
icp_gate_api_success /error absent;
icp_gate_api_status "/data/备案号" present;
icp_gate_api_icp "/data/备案号";
icp_gate_api_domain /data/domain;
icp_gate_api_default_region global;
EOF

    my @cases = (
        ['p1.cn', '{"data":{"备案号":"京ICP备2号","domain":"P1.cn"}}',
         200, 'allow', 'a non-empty field means filed (the domain\'s case '
         . 'aside)'],
        ['p2.cn', '{"data":{"备案号":""}}', 403, 'unfiled',
         'an empty one means not filed'],
        ['p3.cn', '{"data":{}}', 403, 'unfiled', 'and so does none'],
        ['p7.cn', '{"data":{"备案号":false}}', 403, 'unfiled',
         'and so does false'],
        ['p4.cn', '{"error":{"error_code":"CDN.0102","error_msg":"The domain is not exist."}}',
         403, 'lookup_failed', 'an error object in a 200 is a failed lookup'],
        ['p5.cn', '{"data":{"备案号":"京ICP备3号","domain":"other.cn"}}',
         403, 'lookup_failed', 'an answer for another domain is a failed '
         . 'lookup'],
        ['p6.cn', '{"data":{"备案号":"京ICP备4号"},"error":null}',
         200, 'allow', 'a null error is none'],
    );

    for my $c (@cases) {
        my ($d, $body, $status, $why, $what) = @$c;
        raw($d, $body);
        my $r = $t->get("live.$d");
        my $got = $status == 200 ? $r->{headers}{'x-result'}
                                 : $r->{headers}{'x-reason'};
        is "$r->{status} $got", "$status $why", "$what ($d)";
    }

    my $req = request_of('p1.cn');
    is $req->{method}, 'POST', 'the request is a POST';
    is_deeply eval { $json->decode($req->{body}) },
        { domain => 'p1.cn', kind => 'icp' },
        'its body is the template with the domain';
    is $api->api_headers('p1.cn')->{'content-type'}, 'application/json',
        'sent as JSON';

    my $log = $t->error_log;
    like $log, qr{answered "p4\.cn" with "/error": \{"error_code":"CDN\.0102",.*not a success},
        'the error object is in the error log';
    like $log, qr{answered "p5\.cn" for another domain, "/data/domain": "other\.cn"},
        'the other domain is named';

    $t->stop_nginx;
    $t->done_cleanly;
}

# the default region: every answer's, and a 404's, when the source names none
{
    my $t = gate(<<'EOF');
icp_gate_api "%%API_URL%%";
icp_gate_api_region off;
icp_gate_api_default_region overseas;
EOF
    raw('r1.cn', '{"status":"unfiled"}');
    raw('r2.cn', '{"status":"unfiled","region":"mainland"}');
    raw('r3.cn', '', 404);
    for my $d (qw(r1.cn r2.cn r3.cn)) {
        my $r = $t->get("live.$d");
        is "$r->{status} $r->{headers}{'x-result'}", '200 exempt',
            "$d: unfiled, overseas by icp_gate_api_default_region: exempt";
    }
    $t->stop_nginx;
    $t->done_cleanly;
    $api->api_clear;
}

# with icp_gate_api_unfiled_status off a 404 is a failure
{
    my $t = gate(<<'EOF');
icp_gate_api "%%API_URL%%";
icp_gate_api_unfiled_status off;
EOF
    $api->api_set('nf404.cn', '404');
    my $r = $t->get('live.nf404.cn');
    is "$r->{status} $r->{headers}{'x-reason'}", '403 lookup_failed',
        'icp_gate_api_unfiled_status off: a 404 is a failed lookup';
    $t->stop_nginx;
    $t->done_cleanly;
}

$api->stop_api;
done_testing;
