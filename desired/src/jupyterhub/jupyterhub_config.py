# JupyterHub configuration for ai-infra.
c = get_config()  # noqa: F821

c.JupyterHub.bind_url = "http://:8000/hub/"
c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
c.JupyterHub.template_paths = ["/etc/jupyterhub/templates"]

# users log in with their LDAP account
c.JupyterHub.authenticator_class = "ldapauthenticator.LDAPAuthenticator"
c.LDAPAuthenticator.server_address = "openldap"
c.LDAPAuthenticator.bind_dn_template = ["uid={username},ou=people,dc=ai-infra,dc=local"]

# notebooks run as Slurm jobs
c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
c.Spawner.default_url = "/lab"
