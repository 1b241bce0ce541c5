"""TLS for the host's and the runners' servers and for the clients that call them:
certificates written by ``kawa init tls`` (:mod:`kawa.tls.certificates`) and the SSL
contexts the clients verify servers with (:mod:`kawa.tls.contexts`)."""
