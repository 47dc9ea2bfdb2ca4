#!/usr/bin/perl
# Mail::DKIM's verifier on the message on stdin; key records from the arguments
# (name=record), never from DNS. Prints one line per signature: result, algorithm, selector.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS;

my %records = map { split /=/, $_, 2 } @ARGV;

package Keys;
sub new { bless {}, shift }
sub errorstring { 'NOERROR' }
sub send {
    my ($self, $name, $type) = @_;
    my $packet = Net::DNS::Packet->new($name, $type);
    $packet->header->qr(1);
    my $record = $records{lc $name};
    if (defined $record) {
        my @strings = unpack '(A255)*', $record;
        $packet->push(answer => Net::DNS::RR->new(
            name => $name, type => 'TXT', ttl => 60, txtdata => \@strings));
    } else {
        $packet->header->rcode('NXDOMAIN');
    }
    return $packet;
}

package main;
Mail::DKIM::DNS::resolver(Keys->new);
my $dkim = Mail::DKIM::Verifier->new;
binmode STDIN;
while (<STDIN>) {
    s/\r?\n\z/\r\n/;
    $dkim->PRINT($_);
}
$dkim->CLOSE;
foreach my $signature ($dkim->signatures) {
    printf "%s %s %s\n", $signature->result, $signature->algorithm, $signature->selector;
}
