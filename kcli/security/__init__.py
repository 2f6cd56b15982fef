"""Security mechanisms both sides use, free of sockets and files: TLS contexts, SASL mechanisms
(PLAIN, SCRAM), principals and the ACL model.  Brokers and clients build on them; where credentials
and ACLs are stored is the cluster layer's business."""
