"""The pages' words, Danish first, English beside them. A page asks for a key in the member's language (the `lang`
cookie, set by the switch in the page header); a key missing in English falls back to Danish, and a key missing
altogether shows itself, so a forgotten text is seen, not silently blank. tests/unit/test_i18n.py holds every key
the templates use to both languages."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

LANGUAGES = ("da", "en")
COPENHAGEN = ZoneInfo("Europe/Copenhagen")

MESSAGES: dict[str, tuple[str, str]] = {
    "site": ("Netværk", "Netværk"),
    "tagline": ("Dansk IT's netværksgrupper", "Dansk IT's network groups"),
    "skip": ("Spring til indhold", "Skip to content"),
    "nav.dashboard": ("Overblik", "Overview"),
    "nav.groups": ("Grupper", "Groups"),
    "nav.profile": ("Min profil", "My profile"),
    "nav.admin": ("Administration", "Administration"),
    "nav.logout": ("Log ud", "Sign out"),
    "nav.language": ("Sprog", "Language"),
    "lang.other": ("English", "Dansk"),
    "login.title": ("Log ind", "Sign in"),
    "login.intro": (
        "Skriv din e-mailadresse, så sender vi dig et link. Linket virker én gang og i 15 minutter.",
        "Enter your email address and we will send you a link. The link works once and for 15 minutes.",
    ),
    "login.email": ("E-mailadresse", "Email address"),
    "login.send": ("Send mig et login-link", "Send me a sign-in link"),
    "login.sent.title": ("Tjek din indbakke", "Check your inbox"),
    "login.sent": (
        "Hvis adressen hører til et medlem, er der nu sendt et login-link til den. Det virker i 15 minutter.",
        "If the address belongs to a member, a sign-in link is on its way to it. It works for 15 minutes.",
    ),
    "login.confirm.title": ("Log ind på Netværk", "Sign in to Netværk"),
    "login.confirm": ("Tryk på knappen for at logge ind.", "Press the button to sign in."),
    "login.confirm.button": ("Log ind", "Sign in"),
    "login.expired.title": ("Linket er udløbet", "The link has expired"),
    "login.expired": (
        "Login-linket er ældre end 15 minutter. Bed om et nyt herunder.",
        "The sign-in link is older than 15 minutes. Ask for a new one below.",
    ),
    "login.used.title": ("Linket er allerede brugt", "The link has been used already"),
    "login.used": (
        "Et login-link virker kun én gang. Bed om et nyt herunder.",
        "A sign-in link works once only. Ask for a new one below.",
    ),
    "login.unknown.title": ("Linket virker ikke", "The link does not work"),
    "login.unknown": (
        "Vi kender ikke dette login-link. Bed om et nyt herunder.",
        "We do not know this sign-in link. Ask for a new one below.",
    ),
    "login.slow": (
        "Du har bedt om mange links på kort tid. Vent et kvarter, og prøv igen.",
        "You asked for many links in a short time. Wait a quarter of an hour and try again.",
    ),
    "logout.everywhere": ("Log ud på alle enheder", "Sign out everywhere"),
    "logout.done": ("Du er logget ud.", "You are signed out."),
    "error.email": ("Skriv en gyldig e-mailadresse.", "Enter a valid email address."),
    "error.required": ("Skal udfyldes.", "Required."),
    "error.csrf": (
        "Formularen var for gammel. Prøv igen: det, du skrev, er bevaret.",
        "The form was too old. Try again: what you typed is kept.",
    ),
    "error.title": ("Noget gik galt", "Something went wrong"),
    "error.forbidden": ("Det har du ikke adgang til.", "You do not have access to that."),
    "error.notfound": ("Siden findes ikke.", "The page does not exist."),
    "error.slow": (
        "For mange forespørgsler. Vent lidt, og prøv igen.",
        "Too many requests. Wait a little and try again.",
    ),
    "unavailable.title": ("Midlertidigt utilgængelig", "Temporarily unavailable"),
    "unavailable": (
        "Tjenesten for {service} svarer ikke lige nu. Prøv igen om lidt. Intet af det, du har gemt, er gået tabt.",
        "The {service} service does not answer right now. Try again shortly. Nothing you saved is lost.",
    ),
    "service.members": ("medlemmer og grupper", "members and groups"),
    "service.meetings": ("møder", "meetings"),
    "service.notifications": ("e-mails", "emails"),
    "dash.title": ("Overblik", "Overview"),
    "dash.hello": ("Hej {name}", "Hello {name}"),
    "dash.groups": ("Mine grupper", "My groups"),
    "dash.nogroups": ("Du er ikke med i nogen gruppe endnu.", "You are not in any group yet."),
    "dash.browse": ("Find en gruppe", "Find a group"),
    "dash.meetings": ("Mine næste møder", "My next meetings"),
    "dash.nomeetings": ("Ingen kommende møder.", "No meetings coming up."),
    "role.coordinator": ("koordinator", "coordinator"),
    "role.member": ("medlem", "member"),
    "answer.none": ("Ikke besvaret", "Not answered"),
    "answer.attending": ("Jeg kommer", "I'm coming"),
    "answer.tentative": ("Måske", "Maybe"),
    "answer.declined": ("Jeg kommer ikke", "I'm not coming"),
    "status.confirmed": ("plads bekræftet", "seat confirmed"),
    "status.waitlisted": ("på venteliste, nr. {n}", "on the waiting list, no. {n}"),
    "status.noted": ("noteret", "noted"),
    "status.withdrawn": ("trukket tilbage", "withdrawn"),
    "groups.title": ("Netværksgrupper", "Network groups"),
    "groups.members": ("{n} medlemmer", "{n} members"),
    "groups.join": ("Meld mig ind", "Join"),
    "groups.leave": ("Meld mig ud", "Leave"),
    "groups.approval": ("Kræver godkendelse", "Needs approval"),
    "groups.joined": ("Du er nu med i gruppen.", "You have joined the group."),
    "groups.pending": ("Din anmodning venter på en koordinators godkendelse.", "Your request awaits a coordinator."),
    "groups.waitlisted": (
        "Gruppen er fuld: du står på ventelisten.",
        "The group is full: you are on the waiting list.",
    ),
    "groups.left": ("Du har meldt dig ud af gruppen.", "You have left the group."),
    "groups.mine": ("Du er med", "You are in"),
    "group.directory": ("Hvem er med", "Who is in the group"),
    "group.directory.closed": (
        "Kun gruppens medlemmer kan se, hvem der er med.",
        "Only the group's members see who is in it.",
    ),
    "group.meetings": ("Møder", "Meetings"),
    "group.proposals": ("Forslag til emner og oplæg", "Proposed topics and talks"),
    "group.noproposals": ("Ingen forslag endnu.", "No proposals yet."),
    "group.propose": ("Foreslå et emne", "Propose a topic"),
    "group.backers": ("{n} støtter", "{n} backers"),
    "group.back": ("Støt", "Back"),
    "group.requests": ("Anmodninger om at blive medlem", "Requests to join"),
    "group.norequests": ("Ingen ventende anmodninger.", "No requests waiting."),
    "group.approve": ("Godkend", "Approve"),
    "group.decline": ("Afvis", "Decline"),
    "group.schedule": ("Planlæg et møde", "Schedule a meeting"),
    "field.name": ("Navn", "Name"),
    "field.email": ("E-mail", "Email"),
    "field.phone": ("Telefon", "Phone"),
    "field.job_title": ("Stilling", "Job title"),
    "field.organisation": ("Organisation", "Organisation"),
    "field.locale": ("Sprog i e-mails", "Language of emails"),
    "field.title": ("Titel", "Title"),
    "field.description": ("Beskrivelse", "Description"),
    "field.kind": ("Slags", "Kind"),
    "field.date": ("Dato", "Date"),
    "field.start": ("Starter kl.", "Starts at"),
    "field.end": ("Slutter kl.", "Ends at"),
    "field.venue": ("Sted", "Venue"),
    "field.address": ("Adresse", "Address"),
    "field.capacity": ("Pladser", "Seats"),
    "field.reason": ("Begrundelse", "Reason"),
    "field.region": ("Region", "Region"),
    "field.topics": ("Emner (adskilt med komma)", "Topics (comma-separated)"),
    "field.requires_approval": ("Kræver godkendelse", "Needs approval"),
    "kind.topic": ("Emne", "Topic"),
    "kind.talk": ("Oplæg", "Talk"),
    "save": ("Gem", "Save"),
    "saved": ("Gemt.", "Saved."),
    "send": ("Send", "Send"),
    "meeting.when": ("Hvornår", "When"),
    "meeting.where": ("Hvor", "Where"),
    "meeting.online": ("Online", "Online"),
    "meeting.agenda": ("Dagsorden", "Agenda"),
    "meeting.noagenda": ("Dagsordenen er ikke lagt endnu.", "The agenda is not set yet."),
    "meeting.answer": ("Mit svar", "My answer"),
    "meeting.answered": ("Dit svar er gemt.", "Your answer is saved."),
    "meeting.coming": ("Hvem kommer", "Who is coming"),
    "meeting.seats": (
        "{confirmed} af {capacity} pladser taget, {waitlisted} på venteliste",
        "{confirmed} of {capacity} seats taken, {waitlisted} waiting",
    ),
    "meeting.calendar": ("Føj til kalender (.ics)", "Add to calendar (.ics)"),
    "meeting.feed": ("Mit kalender-abonnement", "My calendar subscription"),
    "meeting.feed.make": ("Lav et kalender-link til alle mine møder", "Make a calendar link for all my meetings"),
    "meeting.feed.made": (
        "Abonnér på denne adresse i Outlook, Google eller Apple Kalender. Den vises kun nu; hold den for dig selv.",
        "Subscribe to this address in Outlook, Google or Apple Calendar. It is shown only now; keep it to yourself.",
    ),
    "meeting.cancelled": ("Aflyst: {reason}", "Cancelled: {reason}"),
    "meeting.reschedule": ("Flyt mødet", "Move the meeting"),
    "meeting.moved": ("Mødet er flyttet. Medlemmerne får besked.", "The meeting has moved. The members are told."),
    "meeting.cancel": ("Aflys mødet", "Cancel the meeting"),
    "meeting.scheduled": (
        "Mødet er planlagt. Medlemmerne får en invitation.",
        "The meeting is scheduled. The members get an invitation.",
    ),
    "meeting.status.scheduled": ("planlagt", "scheduled"),
    "meeting.status.cancelled": ("aflyst", "cancelled"),
    "meeting.status.held": ("afholdt", "held"),
    "agenda.check_in": ("Check-in", "Check-in"),
    "agenda.talk": ("Oplæg", "Talk"),
    "agenda.discussion": ("Drøftelse", "Discussion"),
    "agenda.break": ("Pause", "Break"),
    "agenda.other": ("Andet", "Other"),
    "minutes": ("{n} min.", "{n} min."),
    "profile.title": ("Min profil", "My profile"),
    "profile.consents": ("Samtykker", "Consents"),
    "consent.meeting_invitations": ("Invitationer til møder", "Meeting invitations"),
    "consent.reminders": ("Påmindelser", "Reminders"),
    "consent.news": ("Nyheder", "News"),
    "consent.show_email": ("Vis min e-mail for gruppens medlemmer", "Show my email to the group's members"),
    "consent.show_phone": (
        "Vis mit telefonnummer for gruppens medlemmer",
        "Show my phone number to the group's members",
    ),
    "profile.preferences": ("E-mails jeg vil have", "Emails I want"),
    "pref.announcements": ("Invitationer og nyheder", "Invitations and news"),
    "pref.reminders": ("Påmindelser", "Reminders"),
    "pref.agenda_updates": ("Ændringer i dagsordener", "Agenda changes"),
    "profile.deliveries": ("E-mails vi har sendt dig", "Emails we sent you"),
    "profile.nodeliveries": ("Ingen endnu.", "None yet."),
    "profile.data": ("Mine data", "My data"),
    "profile.export": ("Hent alle mine data (JSON)", "Download all my data (JSON)"),
    "profile.delete": ("Slet min konto", "Delete my account"),
    "profile.delete.warn": (
        "Sletter dine personoplysninger i hele platformen. Det kan ikke fortrydes. Skriv SLET for at bekræfte.",
        "Erases your personal data across the platform. It cannot be undone. Type DELETE to confirm.",
    ),
    "profile.delete.word": ("SLET", "DELETE"),
    "profile.delete.confirm": ("Bekræft", "Confirm"),
    "profile.deleted": ("Din konto er slettet.", "Your account has been deleted."),
    "admin.title": ("Administration", "Administration"),
    "admin.groups": ("Grupper", "Groups"),
    "admin.newgroup": ("Opret en gruppe", "Create a group"),
    "admin.created": ("Gruppen er oprettet.", "The group was created."),
    "admin.members": ("Find medlemmer", "Find members"),
    "admin.search": ("Søg", "Search"),
    "admin.count": ("Medlemmer", "Members"),
    "admin.organisations": ("Organisationer", "Organisations"),
    "yes": ("Ja", "Yes"),
    "no": ("Nej", "No"),
}


def translate(lang: str, key: str, **values: object) -> str:
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    text = pair[1] if lang == "en" and pair[1] else pair[0]
    return text.format(**values) if values else text


def local_time(value: str | datetime, lang: str) -> str:
    """An ISO time as a member in Denmark reads it: 'tirsdag 10. marts 2030 kl. 13:00' (or, in English, 'Tuesday
    10 March 2030, 13:00')."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    local = moment.astimezone(COPENHAGEN)
    if lang == "en":
        return local.strftime("%A %-d %B %Y, %H:%M")
    days = ["mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag"]
    months = [
        "januar",
        "februar",
        "marts",
        "april",
        "maj",
        "juni",
        "juli",
        "august",
        "september",
        "oktober",
        "november",
        "december",
    ]
    return f"{days[local.weekday()]} {local.day}. {months[local.month - 1]} {local.year} kl. {local:%H:%M}"
