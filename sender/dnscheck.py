"""DNS checks behind deliverability: SPF, DMARC, DKIM CNAMEs, the MAIL FROM domain and recipient MX.

Every check takes a resolver: any object with `resolve(name, rdtype)` returning an iterable of records
and raising dnspython's exceptions (NXDOMAIN, NoAnswer, timeouts). `make_resolver()` gives dnspython's
own; tests pass a fake, so nothing here needs the network to be tested.

Each check returns a `Finding` (pass / warn / fail, the evidence, and the fix). A lookup that times out
is a warning ("could not check"), never a failure: only what DNS actually answered can fail a check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import dns.exception
import dns.resolver

Status = Literal["pass", "warn", "fail"]
SES_SPF_INCLUDE = "amazonses.com"
SPF_LOOKUP_LIMIT = 10  # RFC 7208 section 4.6.4
# Enough of the public suffix list to find the organizational domain of the usual From domains.
_TWO_LABEL_SUFFIXES = frozenset(
    {
        "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "com.au", "net.au", "org.au",
        "edu.au", "co.nz", "org.nz", "co.jp", "ne.jp", "or.jp", "com.br", "com.mx", "co.za", "com.sg",
        "com.hk", "co.in", "co.kr", "com.tr", "com.cn", "com.tw", "co.il", "com.ar", "com.co",
    }
)  # fmt: skip


class Resolver(Protocol):
    def resolve(self, name: str, rdtype: str) -> Iterable[Any]: ...


@dataclass(frozen=True, slots=True)
class Finding:
    status: Status
    evidence: str
    fix: str | None = None


def make_resolver(lifetime: float = 5.0) -> Resolver:
    """dnspython's resolver on the system's configuration, each query bounded to `lifetime` seconds."""
    resolver = dns.resolver.Resolver()
    resolver.lifetime = lifetime
    resolver.timeout = min(lifetime, 2.0)
    return resolver


# --- lookups --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Lookup:
    """A lookup's answer: `state` ok (records), nxdomain (no such name), nodata (name, no such type), error."""

    name: str
    rdtype: str
    state: Literal["ok", "nxdomain", "nodata", "error"]
    records: tuple[Any, ...] = ()
    error: str | None = None

    @property
    def missing(self) -> bool:
        return self.state in ("nxdomain", "nodata")


def lookup(resolver: Resolver, name: str, rdtype: str) -> Lookup:
    try:
        records = tuple(resolver.resolve(name, rdtype))
    except dns.resolver.NXDOMAIN:
        return Lookup(name, rdtype, "nxdomain")
    except dns.resolver.NoAnswer:
        return Lookup(name, rdtype, "nodata")
    except dns.exception.Timeout:
        return Lookup(name, rdtype, "error", error="timed out")
    except dns.resolver.NoNameservers:
        return Lookup(name, rdtype, "error", error="no name server answered (SERVFAIL)")
    except dns.exception.DNSException as e:
        return Lookup(name, rdtype, "error", error=f"{type(e).__name__}: {e}")
    if not records:
        return Lookup(name, rdtype, "nodata")
    return Lookup(name, rdtype, "ok", records)


def _txt(record: Any) -> str:
    strings = getattr(record, "strings", None)
    if strings is not None:
        return b"".join(strings).decode("utf-8", "replace")
    text = str(record)
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _host(value: Any) -> str:
    text = value.to_text() if hasattr(value, "to_text") else str(value)
    return text.rstrip(".").lower() if text != "." else "."


def _mx(record: Any) -> tuple[int, str]:
    if hasattr(record, "exchange"):
        return int(record.preference), _host(record.exchange)
    preference, _, host = str(record).partition(" ")
    return int(preference), _host(host.strip())


def _target(record: Any) -> str:
    return _host(record.target if hasattr(record, "target") else record)


def _why(result: Lookup) -> str:
    return {"nxdomain": "the name does not exist", "nodata": "no record of that type"}.get(
        result.state, result.error or "lookup failed"
    )


# --- domain helpers -------------------------------------------------------------------------------------
def org_domain(domain: str) -> str:
    """The organizational domain (approximate: a short public-suffix list, else the last two labels)."""
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in _TWO_LABEL_SUFFIXES:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def aligned(domain: str, from_domain: str, mode: str) -> bool:
    """DMARC identifier alignment: strict = the same name; relaxed = the same organizational domain."""
    a, b = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return a == b if mode == "s" else org_domain(a) == org_domain(b)


# --- SPF ------------------------------------------------------------------------------------------------
def _is_spf(text: str) -> bool:
    lowered = text.strip().lower()
    return lowered == "v=spf1" or lowered.startswith("v=spf1 ")


@dataclass
class _SpfWalk:
    lookups: int = 0
    ses_via: str | None = None  # the domain whose record includes amazonses.com
    problems: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


def _walk_spf(resolver: Resolver, domain: str, record: str, walk: _SpfWalk, depth: int = 0) -> None:
    walk.seen.add(domain)
    for term in record.split()[1:]:
        if walk.lookups > SPF_LOOKUP_LIMIT or depth > 10:
            return
        lowered = term.lower()
        qualifier = lowered[0] if lowered[0] in "+-~?" else "+"
        body = lowered[1:] if lowered[0] in "+-~?" else lowered
        target: str | None = None
        if body.startswith("include:"):
            walk.lookups += 1
            target = body.split(":", 1)[1]
            if target.rstrip(".") == SES_SPF_INCLUDE:
                if qualifier == "+" and walk.ses_via is None:
                    walk.ses_via = domain
                continue
        elif body.startswith("redirect="):
            walk.lookups += 1
            target = body.split("=", 1)[1]
        elif body in ("a", "mx", "ptr") or body.startswith(("a:", "a/", "mx:", "mx/", "ptr:", "exists:")):
            walk.lookups += 1
            continue
        if target is None or "%" in target or target in walk.seen:
            continue
        nested = lookup(resolver, target, "TXT")
        if nested.state == "error":
            walk.errors.append(f"{target}: {_why(nested)}")
            continue
        spf = [t for t in (_txt(r) for r in nested.records) if _is_spf(t)]
        if len(spf) != 1:
            walk.problems.append(f"{term} points to {target}, which has {len(spf) or 'no'} SPF record(s)")
            continue
        _walk_spf(resolver, target, spf[0], walk, depth + 1)


def _spf_records(resolver: Resolver, domain: str) -> tuple[Lookup, list[str]]:
    result = lookup(resolver, domain, "TXT")
    return result, [t for t in (_txt(r) for r in result.records) if _is_spf(t)]


def _all_qualifier(record: str) -> str | None:
    for term in record.split()[1:]:
        lowered = term.lower()
        if lowered.lstrip("+-~?") == "all":
            return lowered[0] if lowered[0] in "+-~?" else "+"
    return None


def _evaluate_spf(resolver: Resolver, domain: str, record: str) -> tuple[_SpfWalk, list[str]]:
    """Walk one SPF record; return the walk and the problems that make receivers treat SPF as broken."""
    walk = _SpfWalk()
    _walk_spf(resolver, domain, record, walk)
    broken = list(walk.problems)
    if walk.lookups > SPF_LOOKUP_LIMIT:
        broken.append(f"more than {SPF_LOOKUP_LIMIT} DNS-querying terms (include, a, mx, redirect...)")
    return walk, broken


def check_spf(resolver: Resolver, domain: str, *, mail_from_domain: str | None = None) -> Finding:
    """The From domain's SPF: one record only, and SES authorised directly or through the MAIL FROM domain."""
    result, records = _spf_records(resolver, domain)
    if result.state == "error":
        return Finding("warn", f"could not look up TXT {domain}: {_why(result)}", "Re-run; check the domain's DNS.")
    if result.state == "nxdomain":
        return Finding(
            "fail", f"{domain} does not exist in DNS", f"Publish DNS for {domain}, or send from a domain that has it."
        )
    via_mail_from = f"SES mail is SPF-checked at the MAIL FROM domain {mail_from_domain} (see MAIL FROM records)"
    if not records:
        return Finding(
            "warn",
            f"no SPF record at {domain}" + (f"; {via_mail_from}" if mail_from_domain else ""),
            f'Publish one TXT record at {domain}: "v=spf1 include:amazonses.com ~all" '
            "(add the other services that send as this domain).",
        )
    if len(records) > 1:
        return Finding(
            "fail",
            f"{len(records)} SPF records at {domain}: receivers treat this as a permanent SPF error",
            f"Merge them into one TXT record at {domain} that starts with v=spf1 and lists every sender "
            "(include:amazonses.com for SES).",
        )
    record = records[0]
    walk, broken = _evaluate_spf(resolver, domain, record)
    shown = record if len(record) <= 160 else record[:157] + "..."
    if broken:
        return Finding(
            "fail",
            f'SPF at {domain} ("{shown}") is broken: {"; ".join(broken)}',
            "Fix the record: every include must point to a domain with exactly one SPF record, and the "
            f"record may need at most {SPF_LOOKUP_LIMIT} DNS lookups in all (flatten or drop includes).",
        )
    if walk.errors:
        return Finding("warn", f'SPF at {domain} ("{shown}"): could not follow {"; ".join(walk.errors)}', None)
    if _all_qualifier(record) == "+":
        return Finding(
            "warn",
            f'SPF at {domain} ends in "+all": it authorises every server on the internet',
            'End the record with "~all" or "-all".',
        )
    if walk.ses_via is not None:
        how = "directly" if walk.ses_via == domain else f"through {walk.ses_via}"
        return Finding("pass", f'one SPF record at {domain}, authorising SES {how} (include:amazonses.com): "{shown}"')
    if mail_from_domain:
        return Finding("pass", f'one SPF record at {domain} ("{shown}"); {via_mail_from}')
    return Finding(
        "warn",
        f'SPF at {domain} ("{shown}") does not authorise SES, and no custom MAIL FROM domain is set: SES mail '
        "passes SPF as amazonses.com, which does not align with the From domain, so DMARC rests on DKIM alone",
        "Set up a custom MAIL FROM subdomain in SES (e.g. mail."
        f"{domain}) so SPF aligns, and add include:amazonses.com to {domain}'s SPF record.",
    )


def check_mail_from_dns(resolver: Resolver, mail_from_domain: str, region: str) -> Finding:
    """The custom MAIL FROM domain: MX to SES's feedback endpoint for this region, SPF authorising SES."""
    expected = f"feedback-smtp.{region}.amazonses.com"
    problems: list[str] = []
    fixes: list[str] = []
    mx = lookup(resolver, mail_from_domain, "MX")
    hosts = sorted(_mx(r) for r in mx.records)
    if mx.state == "error":
        return Finding("warn", f"could not look up MX {mail_from_domain}: {_why(mx)}", None)
    if not any(host == expected for _, host in hosts):
        found = ", ".join(host for _, host in hosts) or _why(mx)
        problems.append(f"MX is {found}, not {expected}")
        fixes.append(f'an MX record at {mail_from_domain}: "10 {expected}"')
    spf_result, records = _spf_records(resolver, mail_from_domain)
    if spf_result.state == "error":
        return Finding("warn", f"could not look up TXT {mail_from_domain}: {_why(spf_result)}", None)
    if len(records) != 1:
        problems.append(f"{len(records) or 'no'} SPF record(s)")
        fixes.append(f'one TXT record at {mail_from_domain}: "v=spf1 include:amazonses.com ~all"')
    else:
        walk, broken = _evaluate_spf(resolver, mail_from_domain, records[0])
        if broken:
            problems.append(f"SPF broken: {'; '.join(broken)}")
            fixes.append(f'one TXT record at {mail_from_domain}: "v=spf1 include:amazonses.com ~all"')
        elif walk.ses_via is None:
            problems.append("SPF does not include amazonses.com")
            fixes.append(f"include:amazonses.com in the SPF record at {mail_from_domain}")
    if problems:
        return Finding(
            "fail", f"MAIL FROM {mail_from_domain}: {'; '.join(problems)}", "Publish " + " and ".join(fixes) + "."
        )
    return Finding("pass", f"MAIL FROM {mail_from_domain}: MX {expected} and SPF authorising SES")


# --- DMARC ----------------------------------------------------------------------------------------------
def _dmarc_tags(record: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip())
    return tags


def check_dmarc(
    resolver: Resolver,
    from_domain: str,
    *,
    dkim_domain: str | None,
    dkim_ready: bool,
    mail_from_domain: str | None,
    identity_known: bool = True,
) -> Finding:
    """DMARC for the From domain: the record, its policy and alignment modes, and whether SES mail aligns.

    `dkim_domain` is the domain SES signs with (None: no DKIM configured); `dkim_ready` whether that
    DKIM is verified and signing now; `mail_from_domain` the custom MAIL FROM SES uses now (None: SES's
    own amazonses.com, which never aligns). `identity_known` False: SES's identity could not be read, so
    alignment is not judged (the identity check reports why).
    """
    where = f"_dmarc.{from_domain}"
    result = lookup(resolver, where, "TXT")
    records = [t for t in (_txt(r) for r in result.records) if t.strip().lower().startswith("v=dmarc1")]
    organizational = org_domain(from_domain)
    inherited = False
    if result.state == "error":
        return Finding("warn", f"could not look up TXT {where}: {_why(result)}", None)
    if not records and organizational != from_domain.lower():
        where = f"_dmarc.{organizational}"
        parent = lookup(resolver, where, "TXT")
        if parent.state == "error":
            return Finding("warn", f"could not look up TXT {where}: {_why(parent)}", None)
        records = [t for t in (_txt(r) for r in parent.records) if t.strip().lower().startswith("v=dmarc1")]
        inherited = True
    if not records:
        return Finding(
            "warn",
            f"no DMARC record at _dmarc.{from_domain}"
            + (f" or _dmarc.{organizational}" if organizational != from_domain.lower() else "")
            + ": Gmail and Yahoo require one from bulk senders",
            f'Publish a TXT record at _dmarc.{organizational}: "v=DMARC1; p=none; rua=mailto:dmarc@{organizational}"'
            ", read the reports, then tighten p= to quarantine or reject.",
        )
    if len(records) > 1:
        return Finding(
            "fail",
            f"{len(records)} DMARC records at {where}: receivers ignore DMARC for the domain",
            f"Keep exactly one TXT record starting with v=DMARC1 at {where}.",
        )
    tags = _dmarc_tags(records[0])
    policy = (tags["sp"] if inherited and "sp" in tags else tags.get("p", "")).lower()
    if policy not in ("none", "quarantine", "reject"):
        return Finding(
            "fail",
            f'DMARC record at {where} has no valid p= tag ("{records[0][:120]}"): receivers ignore it',
            f"Rewrite it as v=DMARC1; p=none (or quarantine/reject); rua=mailto:dmarc@{organizational}",
        )
    adkim = "s" if tags.get("adkim", "r").lower() == "s" else "r"
    aspf = "s" if tags.get("aspf", "r").lower() == "s" else "r"
    mode = {"r": "relaxed", "s": "strict"}
    dkim_aligned = bool(dkim_domain) and aligned(str(dkim_domain), from_domain, adkim)
    spf_aligned = bool(mail_from_domain) and aligned(str(mail_from_domain), from_domain, aspf)
    parts = [
        f"{where}: p={policy}" + (" (sp, inherited by the subdomain)" if inherited and "sp" in tags else ""),
        f"adkim={adkim} ({mode[adkim]}), aspf={aspf} ({mode[aspf]})",
    ]
    if dkim_domain:
        parts.append(f"DKIM d={dkim_domain} {'aligns' if dkim_aligned else 'does not align'}")
    else:
        parts.append("no DKIM domain")
    spf_from = mail_from_domain or "amazonses.com (no custom MAIL FROM)"
    parts.append(f"SPF via {spf_from} {'aligns' if spf_aligned else 'does not align'}")
    if "rua" not in tags:
        parts.append("no rua= (no aggregate reports)")
    evidence = "; ".join(parts)
    if spf_aligned or (dkim_aligned and dkim_ready):
        return Finding("pass", evidence)
    if dkim_aligned:
        return Finding(
            "warn",
            evidence + "; DKIM is not verified yet, so SES mail fails DMARC until it is",
            "Finish DKIM (see the From identity DKIM check); nothing to change in the DMARC record.",
        )
    if not identity_known:
        return Finding("warn", evidence + "; alignment not judged: the SES identity is unknown (see From identity)")
    fix = (
        "Make SES mail align: sign with DKIM for "
        + (from_domain if adkim == "s" else organizational)
        + (" (adkim=s needs the exact From domain)" if adkim == "s" else "")
        + ", or set a custom MAIL FROM subdomain"
        + (" (aspf=s can never align with a subdomain: use relaxed)" if aspf == "s" else "")
        + "."
    )
    if policy == "none":
        return Finding("warn", evidence + "; p=none, so receivers deliver it anyway", fix)
    return Finding("fail", evidence + f"; with p={policy} receivers junk or reject SES mail", fix)


# --- DKIM -----------------------------------------------------------------------------------------------
def check_dkim_records(resolver: Resolver, domain: str, tokens: Sequence[str], *, origin: str | None) -> Finding:
    """Each DKIM token of the identity resolves: Easy DKIM CNAMEs to SES, or BYODKIM public-key TXT records."""
    if not tokens:
        return Finding("warn", f"SES lists no DKIM tokens for {domain}: nothing to look up", None)
    external = (origin or "").upper() == "EXTERNAL"
    bad: list[str] = []
    unknown: list[str] = []
    for token in tokens:
        name = f"{token}._domainkey.{domain}"
        if external:
            result = lookup(resolver, name, "TXT")
            if result.state == "error":
                unknown.append(f"{name}: {_why(result)}")
            elif not any("p=" in _txt(r) for r in result.records):
                bad.append(f"{name}: no DKIM public key (TXT with p=)")
            continue
        result = lookup(resolver, name, "CNAME")
        if result.state == "error":
            unknown.append(f"{name}: {_why(result)}")
            continue
        if result.missing:
            bad.append(f"{name}: {_why(result)}")
            continue
        target = _target(result.records[0])
        if not (target.startswith(f"{token.lower()}.dkim.") and target.endswith(".amazonses.com")):
            bad.append(f"{name} points to {target}, not {token}.dkim.amazonses.com")
    kind = "TXT" if external else "CNAME"
    if bad:
        fix = (
            f"Publish the selector's public key as TXT at <selector>._domainkey.{domain}."
            if external
            else "Publish each as CNAME <token>._domainkey."
            f"{domain} -> <token>.dkim.amazonses.com (tokens from `aws sesv2 get-email-identity "
            f"--email-identity {domain}`); a DNS provider that appends the zone name needs only <token>._domainkey."
        )
        return Finding("fail", f"{len(bad)} of {len(tokens)} DKIM {kind} records wrong: " + "; ".join(bad), fix)
    if unknown:
        return Finding("warn", f"could not look up {len(unknown)} DKIM record(s): " + "; ".join(unknown), None)
    return Finding(
        "pass", f"all {len(tokens)} DKIM {kind} records for {domain} resolve" + ("" if external else " to SES")
    )


# --- recipients -----------------------------------------------------------------------------------------
def check_mx(resolver: Resolver, domain: str) -> Finding:
    """The recipient domain accepts mail: MX records (a null MX fails), else an A/AAAA fallback."""
    result = lookup(resolver, domain, "MX")
    if result.state == "error":
        return Finding("warn", f"could not look up MX {domain}: {_why(result)}", None)
    if result.state == "nxdomain":
        return Finding("fail", f"{domain} does not exist in DNS: mail to it bounces", "Check the address for a typo.")
    if result.state == "ok":
        hosts = sorted(_mx(r) for r in result.records)
        if any(host == "." for _, host in hosts):
            return Finding(
                "fail", f"{domain} publishes a null MX (RFC 7505): it accepts no mail", "Use another address."
            )
        shown = ", ".join(f"{pref} {host}" for pref, host in hosts[:3]) + (" ..." if len(hosts) > 3 else "")
        return Finding("pass", f"{domain} MX: {shown}")
    for rdtype in ("A", "AAAA"):
        fallback = lookup(resolver, domain, rdtype)
        if fallback.state == "ok":
            return Finding(
                "warn",
                f"{domain} has no MX record; mail goes to its {rdtype} record (implicit MX): valid, but unusual "
                "for a domain that receives mail",
                "Check the address for a typo.",
            )
        if fallback.state == "error":
            return Finding("warn", f"{domain} has no MX; could not look up {rdtype}: {_why(fallback)}", None)
    return Finding(
        "fail", f"{domain} has no MX and no A/AAAA record: mail to it bounces", "Check the address for a typo."
    )
