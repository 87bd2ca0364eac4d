"""A real SMTP server for the tests (Debian's python3-aiosmtpd): STARTTLS
required, AUTH PLAIN/LOGIN required with the given user and password. Prints
"READY" once listening, then one JSON line per mail received."""
import json, ssl, sys, threading, warnings
warnings.filterwarnings("ignore", message="Session.login_data")
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

cert, key, user, password, port = sys.argv[1:6]

class Handler:
    async def handle_DATA(self, server, session, envelope):
        print(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                          "data": envelope.content.decode("utf-8", "replace"),
                          "tls": session.ssl is not None}), flush=True)
        return "250 OK"

def auth(server, session, envelope, mechanism, data):
    ok = data.login.decode() == user and data.password.decode() == password
    return AuthResult(success=ok, handled=False)

ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Handler(), hostname="127.0.0.1", port=int(port), tls_context=ctx, require_starttls=True,
               authenticator=auth, auth_required=True, auth_require_tls=True)
c.start()
print("READY", flush=True)
threading.Event().wait()
