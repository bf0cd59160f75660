"""E-mail to people (#20): their preferences and verified addresses (prefs), the signed links in
every message (links), the messages in each person's language (render, with the catalogues under
locale/ and the templates under templates/) and sending through the relay with DKIM (smtp).
The mailer service (consumers/mailer.py) and the pages (producers/web/preferences.py) share it."""
