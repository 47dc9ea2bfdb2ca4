"""The preference page's words in both languages, beyond the ones every page shares
(shell.TEXT): what each category sends, the languages in their own names, the labels of
the controls and the sentences of the confirmation after saving. The templates in
notifyd/templates/pages/ write them; an operator's override may write its own instead.
Romanian follows the project glossary (preferințe de notificare, interval de liniște,
rezumat orar / zilnic, mesaj vocal)."""

from __future__ import annotations

# Each in its own language: a subscriber who cannot read the page's language still finds
# theirs.
LANGUAGE_NAMES = {"ro": "Română", "en": "English"}

# One sentence per category: what it sends. A category not named here (one added to the
# catalogue later) is shown with its name alone.
CATEGORY_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "ro": {
        "calls": "Apelurile la care nu ați răspuns: cine a sunat, când și pe ce număr.",
        "voicemail": "Mesajele vocale lăsate în mesageria dvs., cu înregistrarea atașată dacă "
        "doriți.",
        "fax": "Faxurile primite (atașate ca PDF) și cele trimise sau netrimise.",
        "billing": "Confirmarea plăților și a alimentărilor contului cu credit.",
        "low_credit": "Avertizarea când creditul disponibil scade sub pragul stabilit.",
        "statement": "O dată pe lună: soldul de la început și de la sfârșit, alimentările, "
        "plățile și câte zile vă mai ajunge creditul.",
        "marketing": "Oferte și modificări de tarife, doar cu acordul dvs.",
        "security": "Parola schimbată, recuperarea parolei, PIN-ul de securitate, adresele IP "
        "permise.",
        "service": "Anunțuri de serviciu și lucrări de mentenanță.",
    },
    "en": {
        "calls": "Calls you did not answer: who called, when, and which number.",
        "voicemail": "Voicemail left in your mailbox, with the recording attached if you wish.",
        "fax": "Faxes received (attached as PDF), and faxes sent or not sent.",
        "billing": "Confirmation of payments and of credit added to your account.",
        "low_credit": "A warning when your available credit falls below its threshold.",
        "statement": "Once a month: your opening and closing balance, top-ups, payments and "
        "how many days your credit will last.",
        "marketing": "Offers and tariff changes, only with your consent.",
        "security": "Password changed, password recovery, security PIN, allowed IP addresses.",
        "service": "Service announcements and maintenance work.",
    },
}

MANDATORY_NAMES = {
    "ro": {"security": "Securitatea contului", "service": "Anunțuri de serviciu"},
    "en": {"security": "Account security", "service": "Service announcements"},
}

LABELS: dict[str, dict[str, str]] = {
    "ro": {
        "account": "Contul",
        "address": "Adresa de email",
        "categories": "Ce primiți și cum",
        "always": "Trimise întotdeauna",
        "mode": "Cum primiți",
        "sent_to": "Trimise la",
        "addresses_hint": "Una sau mai multe adrese, separate prin virgulă, înlocuiesc adresele "
        "de mai sus; gol: nimic nu se schimbă.",
        "other_addresses": "Trimiteți la alte adrese",
        "reset_addresses": "Trimiteți din nou la adresa contului",
        "when": "Când",
        "quiet_hours": "Interval de liniște",
        "quiet_hint": "Nu trimitem nimic între aceste ore (în afara celor de securitate). "
        "Lăsați ambele goale pentru niciun interval.",
        "quiet_from": "De la",
        "quiet_to": "Până la",
        "digest_time": "Ora rezumatului zilnic",
        "timezone": "Fusul orar",
        "timezone_hint": "Scrieți un oraș, de exemplu București sau Bucharest.",
        "language": "Limba mesajelor",
        "voicemail_audio": "Înregistrarea mesajelor vocale",
        "audio_on": "Atașată la email",
        "audio_off": "Fără atașament",
        "offers": "Oferte",
        "wording": "Versiunea textului acordului",
        "changed": "Ce s-a schimbat",
        "nothing": "Nu ați schimbat nimic.",
        "back": "Înapoi la preferințe",
        "support": "Asistență",
        "privacy": "Confidențialitate",
        "terms": "Termeni și condiții",
        "was": "înainte",
        "none": "niciunul",
        "on": "da",
        "off": "nu",
        "default_address": "adresa contului",
    },
    "en": {
        "account": "Account",
        "address": "Email address",
        "categories": "What you receive, and how",
        "always": "Always sent",
        "mode": "How you receive them",
        "sent_to": "Sent to",
        "addresses_hint": "One or more addresses, separated by commas, replace the ones above; "
        "empty: nothing changes.",
        "other_addresses": "Send to other addresses",
        "reset_addresses": "Send to the account's address again",
        "when": "When",
        "quiet_hours": "Quiet hours",
        "quiet_hint": "Nothing is sent between these times (except security notices). Leave "
        "both empty for none.",
        "quiet_from": "From",
        "quiet_to": "Until",
        "digest_time": "Time of the daily digest",
        "timezone": "Time zone",
        "timezone_hint": "Type a city, for example Bucharest or London.",
        "language": "Language of the emails",
        "voicemail_audio": "Voicemail recording",
        "audio_on": "Attached to the email",
        "audio_off": "Not attached",
        "offers": "Offers",
        "wording": "Version of the consent wording",
        "changed": "What changed",
        "nothing": "You changed nothing.",
        "back": "Back to your preferences",
        "support": "Support",
        "privacy": "Privacy",
        "terms": "Terms",
        "was": "was",
        "none": "none",
        "on": "yes",
        "off": "no",
        "default_address": "the account's address",
    },
}

# What the page says to fix when a save is refused, in the page's language: each problem of
# preference_form.changes() by its key, with the value given quoted as the language quotes.
PROBLEMS: dict[str, dict[str, str]] = {
    "ro": {
        "mode": "{category}: „{value}” nu este o alegere a acestei pagini.",
        "address": "{category}: „{value}” nu este o adresă de email.",
        "quiet_half": "Intervalul de liniște: completați ambele ore, „De la” și „Până la”, sau "
        "lăsați-le goale pe amândouă.",
        "quiet_equal": "Intervalul de liniște: începutul și sfârșitul sunt la aceeași oră. "
        "Lăsați-le goale pe amândouă pentru niciun interval.",
        "quiet_invalid": "Intervalul de liniște „{value}” nu este valid (de exemplu 22:00-08:00).",
        "digest_time": "Ora rezumatului zilnic: „{value}” nu este o oră (de exemplu 08:00).",
        "timezone": "Fusul orar „{value}” nu este cunoscut: scrieți un oraș și alegeți-l din "
        "listă.",
        "language": "Limba „{value}” nu este disponibilă.",
        "voicemail_audio": "Înregistrarea mesajelor vocale: „{value}” nu este o alegere a "
        "acestei pagini.",
    },
    "en": {
        "mode": "{category}: “{value}” is not a choice of this page.",
        "address": "{category}: “{value}” is not an email address.",
        "quiet_half": "Quiet hours: fill in both times, From and Until, or leave both empty.",
        "quiet_equal": "Quiet hours: the start and the end are the same time. Leave both empty "
        "for none.",
        "quiet_invalid": "Quiet hours “{value}” are not valid (for example 22:00-08:00).",
        "digest_time": "Time of the daily digest: “{value}” is not a time (for example 08:00).",
        "timezone": "Unknown time zone “{value}”: type a city and choose it from the list.",
        "language": "The language “{value}” is not available.",
        "voicemail_audio": "Voicemail recording: “{value}” is not a choice of this page.",
    },
}
