"""DNS checks against a fake resolver: SPF, DMARC, DKIM records, MAIL FROM and recipient MX. No network."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dns.exception
import dns.rdata
import dns.resolver
import pytest

from sender import dnscheck
from sender.dnscheck import check_dkim_records, check_dmarc, check_mail_from_dns, check_mx, check_spf, org_domain

DOMAIN = "queenofsandiego.com"
SES_SPF = "v=spf1 include:amazonses.com ~all"


def _rdata(rdtype: str, text: str) -> Any:
    if rdtype == "TXT" and not text.startswith('"'):
        chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
        text = " ".join('"' + c.replace('"', '\\"') + '"' for c in chunks)
    return dns.rdata.from_text("IN", rdtype, text)


class FakeResolver:
    """Answers from a table with real dnspython rdata; a name with no record of the type is NoAnswer, an
    unknown name NXDOMAIN, and `errors` raise what they hold. Records every query."""

    def __init__(self, records: dict[tuple[str, str], list[str]] | None = None) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.errors: dict[tuple[str, str], Exception] = {}
        self.queries: list[tuple[str, str]] = []
        for (name, rdtype), texts in (records or {}).items():
            self.add(name, rdtype, *texts)

    @staticmethod
    def _key(name: str, rdtype: str) -> tuple[str, str]:
        return name.lower().rstrip("."), rdtype.upper()

    def add(self, name: str, rdtype: str, *texts: str) -> FakeResolver:
        self.records.setdefault(self._key(name, rdtype), []).extend(texts)
        return self

    def fail(self, name: str, rdtype: str, error: Exception) -> FakeResolver:
        self.errors[self._key(name, rdtype)] = error
        return self

    def answer(self, name: str, rdtype: str) -> list[str] | None:
        return self.records.get((name, rdtype))

    def resolve(self, name: str, rdtype: str) -> Iterable[Any]:
        key = self._key(name, rdtype)
        self.queries.append(key)
        if key in self.errors:
            raise self.errors[key]
        texts = self.answer(*key)
        if texts is not None:
            return [_rdata(key[1], t) for t in texts]
        if any(n == key[0] for n, _ in self.records) or self.name_exists(key[0]):
            raise dns.resolver.NoAnswer()
        raise dns.resolver.NXDOMAIN()

    def name_exists(self, name: str) -> bool:
        return False


class PassingResolver(FakeResolver):
    """Every domain is set up right: SPF with SES, DMARC, SES DKIM CNAMEs, MX (SES feedback for MAIL FROM)."""

    def __init__(self, region: str = "us-west-2", dmarc: str = "v=DMARC1; p=quarantine; rua=mailto:d@example.com"):
        super().__init__()
        self.region = region
        self.dmarc = dmarc

    def answer(self, name: str, rdtype: str) -> list[str] | None:
        table = super().answer(name, rdtype)
        if table is not None:
            return table
        if rdtype == "TXT" and name.startswith("_dmarc."):
            return [self.dmarc]
        if rdtype == "TXT" and "._domainkey." not in name:
            return [SES_SPF]
        if rdtype == "CNAME" and "._domainkey." in name:
            return [name.split(".", 1)[0] + ".dkim.amazonses.com."]
        if rdtype == "MX":
            if name.startswith("mail."):
                return [f"10 feedback-smtp.{self.region}.amazonses.com."]
            return [f"10 mx1.{name}.", f"20 mx2.{name}."]
        if rdtype == "A":
            return ["192.0.2.1"]
        return None


# --- SPF -------------------------------------------------------------------------------------------------
def test_spf_passes_with_one_record_including_ses() -> None:
    finding = check_spf(FakeResolver({(DOMAIN, "TXT"): [SES_SPF, "google-site-verification=abc"]}), DOMAIN)
    assert finding.status == "pass"
    assert "directly" in finding.evidence


def test_spf_passes_when_ses_is_reached_through_a_nested_include() -> None:
    resolver = FakeResolver(
        {
            (DOMAIN, "TXT"): ["v=spf1 include:_spf.queenofsandiego.com -all"],
            ("_spf.queenofsandiego.com", "TXT"): [SES_SPF],
        }
    )
    finding = check_spf(resolver, DOMAIN)
    assert finding.status == "pass"
    assert "through _spf.queenofsandiego.com" in finding.evidence


def test_spf_fails_with_two_records() -> None:
    resolver = FakeResolver({(DOMAIN, "TXT"): [SES_SPF, "v=spf1 include:_spf.google.com ~all"]})
    finding = check_spf(resolver, DOMAIN)
    assert finding.status == "fail"
    assert "2 SPF records" in finding.evidence
    assert finding.fix and "Merge" in finding.fix


def test_spf_fails_past_ten_dns_lookups() -> None:
    includes = " ".join(f"include:s{i}.example.net" for i in range(11))
    resolver = FakeResolver({(DOMAIN, "TXT"): [f"v=spf1 {includes} include:amazonses.com -all"]})
    for i in range(11):
        resolver.add(f"s{i}.example.net", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    finding = check_spf(resolver, DOMAIN)
    assert finding.status == "fail"
    assert "more than 10" in finding.evidence


def test_spf_fails_when_an_include_has_no_spf_record() -> None:
    resolver = FakeResolver({(DOMAIN, "TXT"): ["v=spf1 include:gone.example.net include:amazonses.com -all"]})
    finding = check_spf(resolver, DOMAIN)
    assert finding.status == "fail"
    assert "gone.example.net" in finding.evidence


def test_spf_warns_when_missing() -> None:
    finding = check_spf(FakeResolver({(DOMAIN, "TXT"): ["some-verification=1"]}), DOMAIN)
    assert finding.status == "warn"
    assert "no SPF record" in finding.evidence
    assert finding.fix and "include:amazonses.com" in finding.fix


def test_spf_warns_when_ses_is_not_authorised_and_there_is_no_mail_from() -> None:
    resolver = FakeResolver(
        {(DOMAIN, "TXT"): ["v=spf1 include:_spf.google.com ~all"], ("_spf.google.com", "TXT"): ["v=spf1 -all"]}
    )
    finding = check_spf(resolver, DOMAIN)
    assert finding.status == "warn"
    assert "DMARC rests on DKIM alone" in finding.evidence


def test_spf_without_ses_passes_when_a_custom_mail_from_domain_carries_it() -> None:
    resolver = FakeResolver({(DOMAIN, "TXT"): ["v=spf1 mx ~all"]})
    finding = check_spf(resolver, DOMAIN, mail_from_domain="mail." + DOMAIN)
    assert finding.status == "pass"
    assert "MAIL FROM" in finding.evidence


def test_spf_warns_on_plus_all() -> None:
    finding = check_spf(FakeResolver({(DOMAIN, "TXT"): ["v=spf1 include:amazonses.com +all"]}), DOMAIN)
    assert finding.status == "warn"
    assert "+all" in finding.evidence


def test_spf_fails_for_a_domain_that_does_not_exist() -> None:
    assert check_spf(FakeResolver(), DOMAIN).status == "fail"


def test_a_timeout_is_a_warning_never_a_failure() -> None:
    resolver = FakeResolver().fail(DOMAIN, "TXT", dns.exception.Timeout())
    finding = check_spf(resolver, DOMAIN)
    assert finding.status == "warn"
    assert "timed out" in finding.evidence


def test_long_spf_records_split_into_strings_are_joined() -> None:
    record = "v=spf1 " + " ".join(f"ip4:198.51.100.{i}" for i in range(40)) + " include:amazonses.com -all"
    assert len(record) > 255
    assert check_spf(FakeResolver({(DOMAIN, "TXT"): [record]}), DOMAIN).status == "pass"


# --- MAIL FROM -------------------------------------------------------------------------------------------
def test_mail_from_passes_with_feedback_mx_and_spf() -> None:
    mail_from = "mail." + DOMAIN
    resolver = FakeResolver(
        {(mail_from, "MX"): ["10 feedback-smtp.us-west-2.amazonses.com."], (mail_from, "TXT"): [SES_SPF]}
    )
    assert check_mail_from_dns(resolver, mail_from, "us-west-2").status == "pass"


def test_mail_from_fails_when_mx_points_at_another_region() -> None:
    mail_from = "mail." + DOMAIN
    resolver = FakeResolver(
        {(mail_from, "MX"): ["10 feedback-smtp.us-east-1.amazonses.com."], (mail_from, "TXT"): [SES_SPF]}
    )
    finding = check_mail_from_dns(resolver, mail_from, "us-west-2")
    assert finding.status == "fail"
    assert "feedback-smtp.us-east-1.amazonses.com" in finding.evidence
    assert finding.fix and "feedback-smtp.us-west-2.amazonses.com" in finding.fix


def test_mail_from_fails_without_spf() -> None:
    mail_from = "mail." + DOMAIN
    resolver = FakeResolver({(mail_from, "MX"): ["10 feedback-smtp.us-west-2.amazonses.com."]})
    finding = check_mail_from_dns(resolver, mail_from, "us-west-2")
    assert finding.status == "fail"
    assert "no SPF" in finding.evidence


def test_mail_from_warns_when_dns_fails() -> None:
    resolver = FakeResolver().fail("mail." + DOMAIN, "MX", dns.resolver.NoNameservers())
    assert check_mail_from_dns(resolver, "mail." + DOMAIN, "us-west-2").status == "warn"


# --- DMARC -----------------------------------------------------------------------------------------------
def dmarc(record: str, **kwargs: Any) -> dnscheck.Finding:
    args: dict[str, Any] = {"dkim_domain": DOMAIN, "dkim_ready": True, "mail_from_domain": None}
    args.update(kwargs)
    from_domain = args.pop("from_domain", DOMAIN)
    resolver = FakeResolver({(f"_dmarc.{org_domain(from_domain)}", "TXT"): [record]})
    return check_dmarc(resolver, from_domain, **args)


def test_dmarc_passes_with_reject_and_aligned_dkim() -> None:
    finding = dmarc("v=DMARC1; p=reject; rua=mailto:dmarc@queenofsandiego.com")
    assert finding.status == "pass"
    assert "p=reject" in finding.evidence
    assert "adkim=r (relaxed)" in finding.evidence
    assert "DKIM d=queenofsandiego.com aligns" in finding.evidence


def test_dmarc_passes_through_spf_alignment_of_the_mail_from_domain() -> None:
    finding = dmarc("v=DMARC1; p=reject", dkim_domain=None, mail_from_domain="mail." + DOMAIN)
    assert finding.status == "pass"
    assert "SPF via mail.queenofsandiego.com aligns" in finding.evidence
    assert "no rua=" in finding.evidence


def test_dmarc_warns_when_missing() -> None:
    finding = check_dmarc(FakeResolver(), DOMAIN, dkim_domain=DOMAIN, dkim_ready=True, mail_from_domain=None)
    assert finding.status == "warn"
    assert finding.fix and "_dmarc.queenofsandiego.com" in finding.fix


def test_dmarc_fails_when_nothing_aligns_under_a_reject_policy() -> None:
    finding = dmarc("v=DMARC1; p=reject", dkim_domain="other-brand.com")
    assert finding.status == "fail"
    assert "does not align" in finding.evidence


def test_dmarc_warns_when_nothing_aligns_under_p_none() -> None:
    assert dmarc("v=DMARC1; p=none", dkim_domain=None).status == "warn"


def test_strict_dkim_alignment_fails_a_subdomain_from_signed_by_the_parent() -> None:
    finding = dmarc("v=DMARC1; p=quarantine; adkim=s", from_domain="news." + DOMAIN)
    assert finding.status == "fail"
    assert "adkim=s (strict)" in finding.evidence


def test_a_subdomain_inherits_the_organizational_policy_and_its_sp() -> None:
    finding = dmarc("v=DMARC1; p=reject; sp=none", from_domain="news." + DOMAIN)
    assert finding.status == "pass"
    assert "_dmarc.queenofsandiego.com: p=none (sp, inherited" in finding.evidence


def test_dmarc_warns_while_the_only_aligned_dkim_is_not_verified() -> None:
    finding = dmarc("v=DMARC1; p=reject", dkim_ready=False)
    assert finding.status == "warn"
    assert "not verified yet" in finding.evidence


def test_dmarc_fails_with_two_records() -> None:
    resolver = FakeResolver({(f"_dmarc.{DOMAIN}", "TXT"): ["v=DMARC1; p=none", "v=DMARC1; p=reject"]})
    finding = check_dmarc(resolver, DOMAIN, dkim_domain=DOMAIN, dkim_ready=True, mail_from_domain=None)
    assert finding.status == "fail"


def test_dmarc_fails_without_a_valid_policy() -> None:
    assert dmarc("v=DMARC1; rua=mailto:d@queenofsandiego.com").status == "fail"
    assert dmarc("v=DMARC1; p=block").status == "fail"


def test_org_domain_knows_common_two_label_suffixes() -> None:
    assert org_domain("news.queenofsandiego.com") == "queenofsandiego.com"
    assert org_domain("mail.jada.co.uk") == "jada.co.uk"


# --- DKIM records ----------------------------------------------------------------------------------------
TOKENS = ["tok1", "tok2", "tok3"]


def dkim_resolver(**overrides: str | None) -> FakeResolver:
    resolver = FakeResolver()
    for token in TOKENS:
        target = overrides.get(token, f"{token}.dkim.amazonses.com.")
        if target is not None:
            resolver.add(f"{token}._domainkey.{DOMAIN}", "CNAME", target)
    return resolver


def test_dkim_records_pass_when_every_cname_points_to_ses() -> None:
    finding = check_dkim_records(dkim_resolver(), DOMAIN, TOKENS, origin="AWS_SES")
    assert finding.status == "pass"
    assert "all 3" in finding.evidence


def test_dkim_records_fail_when_one_is_missing() -> None:
    finding = check_dkim_records(dkim_resolver(tok2=None), DOMAIN, TOKENS, origin="AWS_SES")
    assert finding.status == "fail"
    assert "tok2._domainkey.queenofsandiego.com" in finding.evidence
    assert "1 of 3" in finding.evidence


def test_dkim_records_fail_when_a_cname_points_elsewhere() -> None:
    finding = check_dkim_records(dkim_resolver(tok3="tok3.example.net."), DOMAIN, TOKENS, origin=None)
    assert finding.status == "fail"
    assert "points to tok3.example.net" in finding.evidence


def test_dkim_records_accept_regional_ses_targets() -> None:
    resolver = dkim_resolver(tok1="tok1.dkim.af-south-1.amazonses.com.")
    assert check_dkim_records(resolver, DOMAIN, TOKENS, origin="AWS_SES").status == "pass"


def test_dkim_records_warn_when_dns_times_out() -> None:
    resolver = dkim_resolver().fail(f"tok1._domainkey.{DOMAIN}", "CNAME", dns.exception.Timeout())
    assert check_dkim_records(resolver, DOMAIN, TOKENS, origin="AWS_SES").status == "warn"


def test_byodkim_selectors_are_checked_as_txt_keys() -> None:
    resolver = FakeResolver({(f"sel1._domainkey.{DOMAIN}", "TXT"): ["v=DKIM1; k=rsa; p=MIIBIjANBg"]})
    assert check_dkim_records(resolver, DOMAIN, ["sel1"], origin="EXTERNAL").status == "pass"
    assert check_dkim_records(FakeResolver(), DOMAIN, ["sel1"], origin="EXTERNAL").status == "fail"


# --- recipient MX ----------------------------------------------------------------------------------------
def test_mx_passes_and_lists_hosts_by_preference() -> None:
    resolver = FakeResolver({("example.com", "MX"): ["20 b.example.com.", "10 a.example.com."]})
    finding = check_mx(resolver, "example.com")
    assert finding.status == "pass"
    assert "10 a.example.com, 20 b.example.com" in finding.evidence


def test_mx_falls_back_to_an_a_record_with_a_warning() -> None:
    resolver = FakeResolver({("example.com", "A"): ["192.0.2.7"]})
    finding = check_mx(resolver, "example.com")
    assert finding.status == "warn"
    assert "implicit MX" in finding.evidence


@pytest.mark.parametrize(
    "resolver",
    [
        FakeResolver(),  # NXDOMAIN
        FakeResolver({("example.com", "TXT"): ["hello"]}),  # the name exists, with no MX, A or AAAA
        FakeResolver({("example.com", "MX"): ["0 ."]}),  # null MX
    ],
    ids=["nxdomain", "no-mx-no-a", "null-mx"],
)
def test_mx_fails_when_the_domain_takes_no_mail(resolver: FakeResolver) -> None:
    assert check_mx(resolver, "example.com").status == "fail"


def test_mx_warns_when_the_lookup_fails() -> None:
    resolver = FakeResolver().fail("example.com", "MX", dns.resolver.NoNameservers())
    assert check_mx(resolver, "example.com").status == "warn"


def test_make_resolver_bounds_each_query() -> None:
    resolver = dnscheck.make_resolver(lifetime=3.0)
    assert isinstance(resolver, dns.resolver.Resolver)
    assert resolver.lifetime == 3.0
