"""The provider's branding as every email template sees it: `brand` in the templates of
both parts (the plain-text footers, footer.*.txt, and the HTML layout, layout.html).

Neighbours: settings/branding.py reads [branding] from the config; rendering.py puts one
`Brand` in its environments' globals, so an operator's override reads it the same way."""

from __future__ import annotations

from dataclasses import dataclass

from notifyd.settings import Settings
from notifyd.settings.branding import BrandingSettings

_DEFAULTS = BrandingSettings()


@dataclass(frozen=True)
class Brand:
    """[branding], with the company's name resolved (`Settings.company`). Every text is
    empty when not configured, and a template shows a contact only when it is set."""

    company: str = ""
    logo_url: str = ""
    primary_colour: str = _DEFAULTS.primary_colour
    text_colour: str = _DEFAULTS.text_colour
    background_colour: str = _DEFAULTS.background_colour
    support_email: str = ""
    support_phone: str = ""
    support_url: str = ""
    privacy_url: str = ""
    terms_url: str = ""

    @property
    def has_support(self) -> bool:
        """Whether any support contact is configured (the footer's support line)."""
        return bool(self.support_email or self.support_phone or self.support_url)

    @classmethod
    def of(cls, settings: Settings) -> Brand:
        branding = settings.branding
        return cls(
            company=settings.company,
            logo_url=branding.logo_url,
            primary_colour=branding.primary_colour,
            text_colour=branding.text_colour,
            background_colour=branding.background_colour,
            support_email=branding.support_email,
            support_phone=branding.support_phone,
            support_url=branding.support_url,
            privacy_url=branding.privacy_url,
            terms_url=branding.terms_url,
        )
