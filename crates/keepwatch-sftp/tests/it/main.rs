//! Integration tests: the tracker between a scripted SFTP client and OpenSSH's real
//! `sftp-server`, so the parser meets real server bytes, in the chunks a pipe delivers them.

mod sftp_server;
