"""Jinja2 extension that turns on keep_trailing_newline in Ansible's Jinja2 environment.

Ansible renders templates with Jinja2's keep_trailing_newline=False (Jinja drops the last
newline of the template source) and then appends newlines only until the output ends with
as many as the source did. For a template that ends in `{% endfor %}\n` (hosts.j2,
memcached.conf.j2) that gives one newline fewer than plain Jinja2 with
keep_trailing_newline=True, which is what infra (Tera) and pyinfra write. The template
module has no keep_trailing_newline option, so run.sh enables this extension through
ansible.cfg (jinja2_extensions, with this folder on PYTHONPATH). Other templates render the
same either way.
"""

from jinja2.ext import Extension


class KeepTrailingNewline(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        environment.keep_trailing_newline = True
