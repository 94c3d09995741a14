"""The router: Rules and RuleEndpoints between REST and the edges' eventbus and servicebus.

`rules` keeps the rule table (sans-I/O); `module` wires it to HTTP, cloudhub and the API.
"""

from modules.router.module import Router

__all__ = ["Router"]
